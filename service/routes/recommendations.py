"""``POST /v1/recommendations``: the rule-based recommendation alone, without a search."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from autotransfer.backbones import list_backbones
from autotransfer.data import load_dataset
from autotransfer.errors import UserInputError
from service.datarefs import RefError, check_dataset, check_weights
from service.deps import SettingsDep, WriteKey
from service.schemas import RecommendationCreate

router = APIRouter(prefix="/v1", tags=["recommendations"])


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


@router.post("/recommendations", dependencies=[WriteKey])
def create_recommendation(body: RecommendationCreate, settings: SettingsDep) -> dict[str, Any]:
    """Profile the dataset, probe the backbone, and return the recommended starting point
    (strategy, freeze depth, learning rate, optimizer) with its reasons."""
    from autotransfer.recommend import recommend

    if body.backbone not in list_backbones():
        raise _unprocessable(
            "backbone", f"backbone={body.backbone!r} is not registered; see GET /v1/backbones."
        )
    roots = settings.resolved_roots
    try:
        dataset = check_dataset(body.dataset, roots)
        weights = check_weights(body.weights, roots)
    except RefError as exc:
        raise _unprocessable(exc.field, str(exc)) from None
    try:
        data = load_dataset(
            dataset, val_fraction=body.val_fraction, seed=body.seed, max_train=body.max_train
        )
        result = recommend(
            data,
            body.backbone,
            weights=weights,
            input_size=body.input_size,
            budget=body.budget,
            sample_size=body.sample_size,
            seed=body.seed,
            batch_size=body.batch_size,
        )
    except UserInputError as exc:
        raise _unprocessable("body", str(exc)) from None
    return result.to_dict()
