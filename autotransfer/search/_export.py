"""Export a study's decision: the chosen configuration, retrained weights and a model card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
import yaml

from autotransfer.finetune import fit
from autotransfer.results import Decision, decide
from autotransfer.search._prepared import PreparedSearch
from autotransfer.search._trial import trial_config


@dataclass(frozen=True)
class Exported:
    config_path: Path
    weights_path: Path
    card_path: Path
    val_accuracy: float


def export_decision(
    study: optuna.Study, p: PreparedSearch, out: Path, decision: Decision | None = None
) -> Exported:
    """Write ``best_config.yaml``, retrain the chosen configuration, save its weights and card."""
    decision = decision or decide(study)
    if decision is None:
        raise RuntimeError(f"Study {study.study_name!r} has no completed trial to export yet.")
    chosen = study.trials[decision.chosen_trial]
    config = trial_config(
        p.spec,
        dict(chosen.params),
        backbone=p.request.backbone,
        weights=p.request.weights,
        input_size=p.input_size,
        seed=p.spec.budget.seed,
        device=p.request.device,
    )
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "best_config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "study": study.study_name,
                "trial": chosen.number,
                "dataset": str(p.request.dataset),
                "config": config.model_dump(mode="json"),
            },
            sort_keys=False,
        )
    )
    result, backbone = fit(config, p.dataset)
    weights_path = out / "model.pt"
    torch.save(backbone.model.state_dict(), weights_path)
    card = {
        "backbone": config.backbone,
        "weights": config.weights,
        "freeze_depth": config.freeze_depth,
        "num_blocks": backbone.num_blocks,
        "trainable_parameters": result.trainable_parameters,
        "input_size": config.input_size,
        "normalization": {"mean": list(backbone.mean), "std": list(backbone.std)},
        "classes": list(p.dataset.class_names),
        "dataset": str(p.request.dataset),
        "dataset_fingerprint": p.dataset.fingerprint,
        "study": study.study_name,
        "trial": chosen.number,
        "search_accuracy": decision.chosen_accuracy,
        "retrained_best_val_accuracy": result.best_val_accuracy,
        "retrained_final_val_accuracy": result.final_val_accuracy,
        "epochs": result.epochs_run,
        "train_time_s": result.train_time_s,
    }
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
    return Exported(config_path, weights_path, card_path, result.best_val_accuracy)
