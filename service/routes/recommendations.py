"""``POST /v1/recommendations``: the rule-based recommendation alone, without a search.

The recommender forwards its whole sample through the backbone at once, in the API process:
the cost grows with images × input_size² (about 5 µs and 0.6 KB a pixel for
EfficientNet-Lite0 on two CPU cores). So a request above ``max_probe_pixels`` is refused
before the probe, one probe runs at a time, and a result is kept for identical requests on
unchanged data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, status

from autotransfer.backbones import list_backbones, suggest_input_size
from autotransfer.data import load_dataset
from autotransfer.errors import UserInputError
from service.datarefs import RefError, check_dataset, check_weights
from service.deps import SettingsDep, WriteKey
from service.schemas import RecommendationCreate
from service.settings import Settings

router = APIRouter(prefix="/v1", tags=["recommendations"])

CACHE_SIZE = 64
_cache: OrderedDict[tuple[object, ...], dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()
_measuring = threading.Lock()  # one probe at a time: each holds its whole sample in memory


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


def fingerprint(path: Path | None) -> tuple[int, ...]:
    """Size and modification time of a data or weights file, or of a folder and each of its
    class folders: what changes when files are added, removed or rewritten there."""
    if path is None:
        return ()
    try:
        entries = [path]
        if path.is_dir():
            entries += sorted(p for p in path.iterdir() if p.is_dir())
        stats = [entry.stat() for entry in entries]
    except OSError:
        return ()
    return tuple(n for s in stats for n in (s.st_size, s.st_mtime_ns))


def _check_cost(body: RecommendationCreate, num_train: int, size: int, settings: Settings) -> None:
    images = min(body.sample_size, num_train)
    pixels = images * size * size
    limit = settings.max_probe_pixels
    if pixels > limit:
        fits = max(1, limit // (size * size))
        raise _unprocessable(
            "sample_size",
            f"probing {images} images at input_size {size} is {pixels:,} pixels, over this "
            f"server's AUTOTRANSFER_MAX_PROBE_PIXELS={limit:,}: send sample_size <= {fits} "
            f"at input_size {size}, or a smaller input_size (or use `autotransfer recommend`).",
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
        dataset = check_dataset(body.dataset, roots, max_bytes=settings.max_dataset_bytes)
        weights = check_weights(body.weights, roots)
    except RefError as exc:
        raise _unprocessable(exc.field, str(exc)) from None
    weights_file = Path(weights) if Path(weights).is_absolute() else None
    key = (
        str(dataset),
        fingerprint(getattr(dataset, "path", None)),
        weights,
        fingerprint(weights_file),
        *body.model_dump(exclude={"dataset", "weights"}).items(),
    )
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return dict(_cache[key])
    try:
        with _measuring:
            data = load_dataset(
                dataset, val_fraction=body.val_fraction, seed=body.seed, max_train=body.max_train
            )
            profile = data.profile()
            size = body.input_size or suggest_input_size(body.backbone, profile.median_resolution)
            _check_cost(body, profile.num_train, size, settings)
            result = recommend(
                data,
                body.backbone,
                weights=weights,
                input_size=size,
                budget=body.budget,
                sample_size=body.sample_size,
                seed=body.seed,
                batch_size=body.batch_size,
            ).to_dict()
    except UserInputError as exc:
        raise _unprocessable("body", str(exc)) from None
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return dict(result)
