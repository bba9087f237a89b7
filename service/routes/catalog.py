"""``/v1/search-spaces`` and ``/v1/backbones``: what a study can be built from."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from fastapi import APIRouter, HTTPException, status

from autotransfer.backbones import get_family, list_backbones, num_blocks
from autotransfer.space import load_spec, packaged_specs
from service.deps import ReadKey
from service.lifecycle import exit_with_parent
from service.schemas import (
    BackbonePublic,
    BackbonesPublic,
    SearchSpacePublic,
    SearchSpacesPublic,
)

router = APIRouter(prefix="/v1", tags=["catalog"], dependencies=[ReadKey])


def _space(name: str) -> SearchSpacePublic:
    spec = load_spec(name)
    return SearchSpacePublic(
        name=name,
        description=getattr(spec, "description", None),
        spec=spec.model_dump(mode="json"),
    )


@router.get("/search-spaces", response_model=SearchSpacesPublic)
def list_search_spaces() -> SearchSpacesPublic:
    """The packaged search spaces, usable as ``space`` in a study."""
    data = [_space(name) for name in packaged_specs()]
    return SearchSpacesPublic(data=data, count=len(data))


@router.get("/search-spaces/{name}", response_model=SearchSpacePublic)
def get_search_space(name: str) -> SearchSpacePublic:
    if name not in packaged_specs():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no search space {name!r}; packaged: {', '.join(packaged_specs())}",
        )
    return _space(name)


_lock = threading.Lock()
_backbones: list[BackbonePublic] | None = None


def _describe_backbones() -> list[dict[str, object]]:
    return [
        {
            "name": name,
            "family": get_family(name).name,
            "blocks": num_blocks(name),
            "weights": list(get_family(name).weight_names(name)),
        }
        for name in list_backbones()
    ]


def backbone_table() -> list[BackbonePublic]:
    """Computed once per process, in a short-lived child process: counting blocks builds
    each architecture, and a few (RegNet) are built with real weights (about 3 GB at peak,
    tens of seconds), which the API process should not keep. The app starts this in a
    background thread (``warm_backbone_table``)."""
    global _backbones
    with _lock:
        if _backbones is None:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                # an orphan would wait on its queue for ever; the child is started by this
                # thread's submit, and this thread waits for it to end (the with block), as
                # the kernel's parent-death signal needs
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            ) as pool:
                rows = pool.submit(_describe_backbones).result()
            _backbones = [BackbonePublic.model_validate(row) for row in rows]
        return _backbones


def warm_backbone_table() -> None:
    """``backbone_table`` at start-up; a server that stops meanwhile ends the pool's process
    (``service.lifecycle.end_children``), which is no error."""
    with contextlib.suppress(BrokenProcessPool):
        backbone_table()


@router.get("/backbones", response_model=BackbonesPublic)
def list_backbones_route() -> BackbonesPublic:
    """Registered backbones with their block counts (the range of freeze depth) and weights."""
    data = backbone_table()
    return BackbonesPublic(data=data, count=len(data))
