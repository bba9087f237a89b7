"""Export a study's decision: the chosen configuration, its weights and a model card.

The weights are the search's own (the chosen trial's best epoch, kept as an artifact by
``_model.py``) when the study kept them for that trial; otherwise, or with
``retrain=True``, the chosen configuration is trained again here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

from autotransfer import record
from autotransfer.backbones import create_backbone
from autotransfer.finetune import TrialConfig, fit
from autotransfer.results import Decision
from autotransfer.search._decision import study_decision
from autotransfer.search._model import fetch_model
from autotransfer.search._prepared import PreparedSearch


@dataclass(frozen=True)
class Exported:
    config_path: Path
    weights_path: Path
    card_path: Path
    val_score: float  # the study's metric, ``metric``, of the exported weights on validation
    metric: str
    retrained: bool  # False: the search's own weights of the chosen trial


def chosen_config(study: optuna.Study, p: PreparedSearch, decision: Decision) -> TrialConfig:
    """The chosen trial's full training configuration, as it trained with it."""
    return p.config_of(study.trials[decision.chosen_trial])


def export_decision(
    study: optuna.Study,
    p: PreparedSearch,
    out: Path,
    decision: Decision | None = None,
    *,
    retrain: bool = False,
) -> Exported:
    """Write ``best_config.yaml``, ``model.pt`` and a model card (``.md`` and ``.json``)."""
    decision = decision or study_decision(study)
    if decision is None:
        raise RuntimeError(f"Study {study.study_name!r} has no completed trial to export yet.")
    config = chosen_config(study, p, decision)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "best_config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "study": study.study_name,
                "trial": decision.chosen_trial,
                "dataset": str(p.request.dataset),
                "config": config.model_dump(mode="json"),
            },
            sort_keys=False,
        )
    )
    weights_path = out / "model.pt"
    kept = record.read_study(study).model
    card: dict[str, Any]
    retrained = retrain or kept is None or kept.get("trial") != decision.chosen_trial
    if not retrained:
        fetch_model(study, p.request, weights_path)
        network = create_backbone(
            config.backbone,
            num_classes=len(p.dataset.class_names),
            weights="none",
            input_size=config.input_size,
        )
        info = record.read_trial(study.trials[decision.chosen_trial])
        score = decision.chosen_score
        card = {
            "weights_from": f"the search: trial #{decision.chosen_trial}, its best epoch "
            f"({info.best_epoch} of {info.epochs_run})",
            "trainable_parameters": info.trainable_parameters,
            "val_accuracy": info.best_val_accuracy if info.best_val_accuracy else score,
            f"val_{decision.metric}": score,
            "train_time_s": info.train_time_s,
            "val_class_report": info.class_report,
        }
    else:
        result, network = fit(config, p.dataset, keep_best=True)
        torch.save(network.model.state_dict(), weights_path)
        score = result.best_val_score
        card = {
            "weights_from": "trained again for this export (best epoch)",
            "trainable_parameters": result.trainable_parameters,
            "val_accuracy": result.best_val_accuracy,
            f"val_{decision.metric}": score,
            f"search_{decision.metric}": decision.chosen_score,
            "retrained_final_val_accuracy": result.final_val_accuracy,
            "train_time_s": result.train_time_s,
            "val_class_report": result.class_report,
        }
    card = {
        "backbone": config.backbone,
        "weights": config.weights,
        "freeze_depth": config.freeze_depth,
        "num_blocks": network.num_blocks,
        "input_size": config.input_size,
        "metric": decision.metric,
        "metric_why": record.read_study(study).metric_why,
        "input_size_why": (record.read_study(study).size_decision or {}).get(
            "why", "fixed by the request"
        ),
        "normalization": {"mean": list(network.mean), "std": list(network.std)},
        "classes": list(p.dataset.class_names),
        "dataset": str(p.request.dataset),
        "dataset_fingerprint": p.dataset.fingerprint,
        "study": study.study_name,
        "trial": decision.chosen_trial,
        "epochs": config.epochs,
        **card,
    }
    test = record.read_study(study).test
    if test and test.get("trial") == decision.chosen_trial and "error" not in test:
        # the figure to quote: measured once on images the search never saw
        card[f"test_{test['metric']}"] = test["score"]
        card["test_accuracy"] = test["accuracy"]
        card["test_images"] = test["images"]
        card["test_class_report"] = test["class_report"]
    card_path = out / "model_card.md"
    lines = [f"# {config.backbone} fine-tuned on {p.request.dataset}", ""]
    lines += [f"- **{key}**: {value}" for key, value in card.items()]
    lines += [
        "",
        "Load with `autotransfer.backbones.create_backbone(backbone, "
        "num_classes=len(classes), weights='none', input_size=input_size)` and "
        "`.model.load_state_dict(torch.load('model.pt', weights_only=True))`.",
    ]
    card_path.write_text("\n".join(lines) + "\n")
    (out / "model_card.json").write_text(json.dumps(card, indent=2))
    return Exported(config_path, weights_path, card_path, score, decision.metric, retrained)
