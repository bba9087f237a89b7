"""The search policy: the practitioners' procedure, run by the engine.

Feature extraction first, as a fast baseline (nearly free on cached features) and the floor
every later step must beat; then the start (the recommender's configuration, or the user's
``--start``); on skewed classes, the ways of handling them (``IMBALANCE``: class weights,
the balanced sampler) at the start, the climb then going on with the best; then unfreeze from
the top, rung by rung up a ladder of depths, while a rung
gains more than the tolerance over every shallower one ("watch validation"), ending the climb
after ``FLAT`` rungs in a row that do not; then refine around the configuration the decision
chooses (``_decision.choose``: the cheapest within the tolerance of the best): its learning
rate up, else down, then the depth halfway to the next shallower one tried, a cheaper network
that may be as good. The recommendation decides only where the climb starts.

:func:`next_step` is the contract: given every trial of the study and the start, it returns
the next configuration to run (a :class:`Proposal`), :data:`PENDING` while the next step
depends on a trial still running or queued, or ``None`` once the procedure is done. It is a
pure function of the trials, so any process asking (a worker, a resumed run, a Ray driver)
gets the same answer; the engine enqueues a proposal under the study lock, so it runs once.
The decision pruner keeps judging every trial: a rung it stops early counts as no gain.

Constants and what they were chosen on (``benchmarks/robustness.py`` reruns the check):

- ``LADDER`` (depth as a fraction of the blocks: 0, 0.18, 0.41, 0.71, 1 → k = 0, 3, 7, 12, 17
  on Lite0's 17 blocks): fewer, wider rungs than the oracle grid's eight, so that a climb from
  k = 0 reaches the digits oracle's depths (k = 10–13) in three fine-tunes whose summed cost is
  about two runs of the deepest; chosen on the digits grid, checked on fmnist-1k.
- ``FLAT = 1``: one rung without a gain ends the climb. On the digits and fmnist-1k grids no
  depth curve at LR 0.03 or 0.1 rises again after a flat ladder rung by more than the
  tolerance (docs/benchmarks.md, depth curves); fmnist-20k is held out.
- ``LR_FACTOR = 3``: the grid's own learning-rate spacing (0.003, 0.01, 0.03, 0.1).
- ``IMBALANCE``, the order the ways of handling skewed classes are tried (balanced sampler,
  sqrt-inverse loss weights, inverse loss weights, none), and the recommender's start on
  skewed data (the balanced sampler): each trained alone at the recommender's configuration
  and at feature extraction, three seeds, on fmnist-lt (50×, the fit) and digits-lt (18×,
  held out): ``python benchmarks/long_tail.py --handling``, docs/benchmarks.md. Inverse
  weights multiply a rare class's gradient by up to the skew ratio and fell furthest at the
  recommended learning rate; the sampler evens what each batch shows instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from autotransfer.backbones import depth_of_fraction
from autotransfer.search._decision import choose

LADDER = (0.0, 0.18, 0.41, 0.71, 1.0)
FLAT = 1
LR_FACTOR = 3.0
# settings a proposal may vary besides depth and learning rate (on skewed classes), and the
# ways of handling skewed classes the procedure tries at the start, in this order (the one the
# start already uses is skipped; the recommender's start draws with the balanced sampler)
VARIED = ("class_weighting", "balanced_sampler")
IMBALANCE = (
    {"class_weighting": "none", "balanced_sampler": True},
    {"class_weighting": "sqrt_inverse", "balanced_sampler": False},
    {"class_weighting": "inverse", "balanced_sampler": False},
    {"class_weighting": "none", "balanced_sampler": False},
)


class Step(StrEnum):
    """Which part of the procedure asked for a trial (``TrialInfo.step``)."""

    BASELINE = "baseline"  # feature extraction: the floor
    START = "start"  # the recommender's (or the user's) first configuration
    CLIMB = "climb"  # one rung further up the depth ladder
    REFINE = "refine"  # around the best configuration: learning rate, a cheaper depth


@dataclass(frozen=True)
class Proposal:
    """The next configuration the procedure wants run, and why, in words."""

    step: Step
    params: dict[str, Any]
    why: str


@dataclass(frozen=True)
class Pending:
    """The next step needs a trial that is still running or queued: ask again later."""


PENDING = Pending()


def ladder(blocks: int, start_depth: int = 0) -> list[int]:
    """The depths the climb may visit for a backbone of ``blocks`` blocks (the start's own
    depth among them).

    >>> ladder(17)
    [0, 3, 7, 12, 17]
    >>> ladder(17, start_depth=10)
    [0, 3, 7, 10, 12, 17]
    """
    rungs = {depth_of_fraction(f, blocks) for f in LADDER} | {start_depth}
    return sorted(k for k in rungs if 0 <= k <= blocks)


def _lr_key(lr: float) -> float:
    return round(math.log(lr), 3)  # learning rates that differ by float noise are the same


Key = tuple[int, float, tuple[Any, ...]]


def _variant(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(params.get(name) for name in VARIED)


def _key(params: dict[str, Any]) -> Key:
    lr = _lr_key(float(params["base_lr"]))
    return int(params["freeze_depth"]), lr, _variant(params)


def _score(t: FrozenTrial) -> float:
    """What a finished trial scored for the procedure: its value when it completed; a pruned
    or failed trial could not change the decision, so it gains nothing."""
    if t.state == TrialState.COMPLETE and t.values:
        return t.values[0]
    return -math.inf


def next_step(
    trials: list[FrozenTrial],
    *,
    start: dict[str, Any],
    blocks: int,
    tolerance: float,
    lr_bounds: tuple[float, float] | None = None,
    depth_bounds: tuple[int, int] | None = None,
    imbalance: Sequence[dict[str, Any]] = (),
) -> Proposal | Pending | None:
    """The procedure's next configuration (see the module docstring).

    ``start`` holds the first configuration's parameters (``freeze_depth`` and ``base_lr``
    among them; every proposal keeps its other values); ``lr_bounds`` and ``depth_bounds``
    are the space's, outside which nothing is proposed. ``imbalance``: the ways of handling
    skewed classes to try at the start, after the baseline and before the climb (each a
    setting of ``VARIED``; empty for balanced data, where none is tried); the climb goes on
    with the one that scored best.
    """
    low_k, high_k = depth_bounds if depth_bounds is not None else (0, blocks)
    k0, lr0 = int(start["freeze_depth"]), float(start["base_lr"])
    by_key: dict[Key, list[FrozenTrial]] = {}
    for t in trials:
        if "freeze_depth" in t.params and "base_lr" in t.params:
            by_key.setdefault(_key(t.params), []).append(t)

    def proposal(
        step: Step, depth: int, lr: float, why: str, on: dict[str, Any] | None = None
    ) -> Proposal:
        return Proposal(step, {**start, **(on or {}), "freeze_depth": depth, "base_lr": lr}, why)

    def state(depth: int, lr: float, on: dict[str, Any] | None = None) -> float | Pending | None:
        """The best finished score at (depth, lr) with the settings ``on`` (default: the
        start's); PENDING while one runs; None: untried."""
        at = by_key.get((depth, _lr_key(lr), _variant({**start, **(on or {})})), [])
        if not at:
            return None
        done = [t for t in at if t.state.is_finished()]
        if not done:
            return PENDING
        return max(_score(t) for t in done)

    # 1. the baseline, 2. the start
    if low_k == 0:
        baseline = state(0, lr0)
        if baseline is None:
            return proposal(Step.BASELINE, 0, lr0, "feature extraction first: the floor")
    start_state = state(k0, lr0)
    if start_state is None:
        return proposal(Step.START, k0, lr0, "the first configuration")
    # 3. skewed classes: the ways of handling them at the start, before anything else (on
    # skewed data they move the balanced score more than a rung of the climb does)
    for option in imbalance:
        if state(k0, lr0, option) is None:
            told = ", ".join(f"{k}={v}" for k, v in option.items())
            return proposal(Step.REFINE, k0, lr0, f"skewed classes: {told}", option)
    tried: list[tuple[dict[str, Any], float | Pending | None]] = [({}, start_state)]
    tried += [(dict(o), state(k0, lr0, o)) for o in imbalance]
    if any(isinstance(score, Pending) for _, score in tried):
        return PENDING
    climb_on = max(tried, key=lambda pair: pair[1] if isinstance(pair[1], float) else -1.0)[0]
    # 4. the climb at the start's learning rate (and its best way of weighing the classes):
    # rungs above the start while they gain
    rungs = [k for k in ladder(blocks, k0) if low_k <= k <= high_k]
    floor = [s for k in rungs if k <= k0 and isinstance(s := state(k, lr0, climb_on), float)]
    if any(state(k, lr0, climb_on) is PENDING for k in rungs if k <= k0):
        return PENDING
    best = max(floor, default=-math.inf)
    flat = 0
    for k in (k for k in rungs if k > k0):
        if flat >= FLAT:
            break
        s = state(k, lr0, climb_on)
        if s is None:
            return proposal(Step.CLIMB, k, lr0, f"unfreeze further: k = {k}", climb_on)
        if isinstance(s, Pending):
            return PENDING
        if s > best + tolerance:
            best, flat = s, 0
        else:
            flat += 1
    # 5. refine around the configuration the decision chooses now
    if any(not t.state.is_finished() for ts in by_key.values() for t in ts):
        return PENDING  # the choice may still change
    picked = choose([t for ts in by_key.values() for t in ts], tolerance=tolerance)
    if picked is None:
        return None
    chosen = picked[1]
    kb, lrb = _key(chosen.params)[0], float(chosen.params["base_lr"])
    on = {name: chosen.params[name] for name in VARIED if name in chosen.params}
    up, down = lrb * LR_FACTOR, lrb / LR_FACTOR
    lo_lr, hi_lr = lr_bounds if lr_bounds is not None else (0.0, math.inf)
    if up <= hi_lr * (1 + 1e-9) and state(kb, up, on) is None:
        return proposal(Step.REFINE, kb, up, f"a higher learning rate at k = {kb}", on)
    if down >= lo_lr * (1 - 1e-9) and state(kb, down, on) is None:
        return proposal(Step.REFINE, kb, down, f"a lower learning rate at k = {kb}", on)
    shallower = [k for (k, _lr, _on) in by_key if k < kb]
    below = max(shallower, default=low_k if low_k < kb else None)
    if below is not None and kb - below > 1:
        mid = (kb + below) // 2
        if state(mid, lrb, on) is None:
            why = f"a cheaper depth: k = {mid} at the best LR"
            return proposal(Step.REFINE, mid, lrb, why, on)
    return None
