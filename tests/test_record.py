"""The study record: stored attribute names are pinned, readers are typed, writers check names.

Renaming a field of ``StudyInfo`` or ``TrialInfo`` would leave every study stored before the
rename unreadable by ``studies show``, the API and the audit: the names below are the
storage format, spelled out once here on purpose.
"""

from __future__ import annotations

import optuna
import pytest

from autotransfer import record

STUDY_NAMES = (
    "backbone",
    "weights",
    "dataset",
    "dataset_fingerprint",
    "num_blocks",
    "input_size",
    "space",
    "spec",
    "requested_trials",
    "seeds_enqueued",
    "recommendation",
    "recommendation_audit",
    "backbone_ranking",
    "ray_experiment",
    "stop_reason",
    "stopped",
    "decision",
    "opens",
    "start",
    "size_decision",
    "metric_why",
    "model",
)
TRIAL_NAMES = (
    "source",
    "backbone",
    "weights",
    "freeze_depth",
    "num_blocks",
    "input_size",
    "dataset_fingerprint",
    "worker",
    "inference",
    "config",
    "step",
    "epochs_run",
    "train_time_s",
    "trainable_parameters",
    "best_epoch",
    "best_val_accuracy",
    "class_report",
    "final_val_accuracy",
    "outcome",
    "error",
    "traceback",
    "ray_node",
    "ray_trial_id",
    "retry_of",
)


def test_stored_names_are_pinned() -> None:
    assert set(STUDY_NAMES) <= set(record.STUDY_FIELDS)
    assert set(TRIAL_NAMES) <= set(record.TRIAL_FIELDS)
    written = {*record.TRIAL_ON_EPOCH, *record.TRIAL_ON_COMPLETE, *record.TRIAL_ON_END}
    assert written <= set(TRIAL_NAMES)
    assert set(record.TRIAL_SHOWN) <= set(TRIAL_NAMES)
    assert (record.RECOMMENDER, record.SAMPLER) == ("recommender", "sampler")
    # stored as their values: renaming one would orphan the studies that hold it
    assert [s.value for s in record.Stop] == [
        "settled",
        "budget",
        "trials",
        "timeout",
        "failing",
        "cancelled",
    ]
    assert [o.value for o in record.Outcome] == [
        "complete",
        "pruned",
        "failed",
        "cancelled",
        "skipped",
        "stale",
        "orphaned",
    ]


def test_a_study_written_by_name_reads_back_typed() -> None:
    study = optuna.create_study()
    record.write_study(study, backbone="efficientnet_lite0", num_blocks=17, seeds_enqueued=0)
    assert study.user_attrs == {
        "backbone": "efficientnet_lite0",
        "num_blocks": 17,
        "seeds_enqueued": 0,
    }
    info = record.read_study(study)
    assert info.num_blocks == 17 and info.seeds_enqueued == 0 and info.recommendation is None


def test_unknown_names_are_refused_when_written_and_ignored_when_read() -> None:
    study = optuna.create_study()
    with pytest.raises(ValueError, match=r"\['sedes_enqueued'\] are not StudyInfo fields"):
        record.write_study(study, sedes_enqueued=1)
    assert study.user_attrs == {}
    with pytest.raises(ValueError, match="TrialInfo"):
        record.trial_attrs(freeze=3)
    study.set_user_attr("someone_elses", 1)  # another tool's attribute does not break reading
    assert record.read_study(study).backbone is None


def test_trials_read_their_records() -> None:
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs=record.trial_attrs(source=record.RECOMMENDER))
    seeded = study.ask()
    seeded.set_user_attr("freeze_depth", 4)
    study.tell(seeded, 0.5)
    study.tell(study.ask(), 0.4)
    first, second = study.trials
    assert record.is_seeded(first) and not record.is_seeded(second)
    assert record.read_trial(first).freeze_depth == 4
    assert record.read_trial(second).source is None
