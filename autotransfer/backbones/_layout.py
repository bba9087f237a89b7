"""Block layouts: how a network's parameters split into ordered blocks, declared as data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

HEAD = -1
"""Block index used for parameters that belong to the (new) classification head."""


@dataclass(frozen=True)
class BlockLayout:
    """Regex map from parameter or module names to ordered blocks (bottom → top).

    ``stem`` matches block 0. Each pattern in ``blocks`` captures integers; the captured
    tuples, sorted, give blocks 1…n (a pattern may capture fewer integers than another, so
    ``features.2`` sorts before ``features.3.0``). ``neck`` matches pretrained layers between
    the last block and the head (final 1×1 conv, final norm, pre-logits); they join the last
    block, because training them while everything below is frozen is never what
    "feature extraction" means. ``head`` is the dotted path of the module replaced by the new
    classifier; ``superseded`` lists modules (pretrained dropouts) replaced by identities
    because the new head brings its own dropout. Names matching ``no_weight_decay`` are kept
    out of weight decay like norms and biases (position embeddings, class tokens).
    ``forward`` declares the forward pass as ordered steps so it can be split at a block
    boundary (see ``_split.py``); ``None`` for families whose forward is not a sequence.

    Names are matched with a trailing dot appended to module names, so one pattern serves
    both ``layer1.0.bn1.weight`` (a parameter) and ``layer1.0.bn1`` (a module).

    >>> layout = BlockLayout(stem=r"^(conv1|bn1)\\.", blocks=(r"^layer(\\d+)\\.(\\d+)\\.",),
    ...                      head="fc")
    >>> names = ["conv1.weight", "layer1.0.conv1.weight", "layer1.1.conv1.weight",
    ...          "layer2.0.conv1.weight", "fc.weight"]
    >>> layout.assign(names)
    {'conv1.weight': 0, 'layer1.0.conv1.weight': 1, 'layer1.1.conv1.weight': 2, \
'layer2.0.conv1.weight': 3, 'fc.weight': -1}
    """

    stem: str
    blocks: tuple[str, ...]
    head: str
    neck: str | None = None
    superseded: tuple[str, ...] = ()
    no_weight_decay: str | None = None
    forward: tuple[str, ...] | None = None

    @cached_property
    def _stem_re(self) -> re.Pattern[str]:
        return re.compile(self.stem)

    @cached_property
    def _neck_re(self) -> re.Pattern[str] | None:
        return re.compile(self.neck) if self.neck else None

    @cached_property
    def _block_res(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.blocks)

    @cached_property
    def _head_prefix(self) -> str:
        return self.head + "."

    def key(self, name: str) -> tuple[int, ...] | str | None:
        """Ordering key of a name: ``"stem"``, ``"neck"``, ``"head"``, a tuple, or None."""
        if name.startswith(self._head_prefix) or name == self.head:
            return "head"
        if self._stem_re.search(name):
            return "stem"
        if self._neck_re is not None and self._neck_re.search(name):
            return "neck"
        for pattern in self._block_res:
            match = pattern.search(name)
            if match:
                return tuple(int(g) for g in match.groups() if g is not None)
        return None

    def assign(self, names: list[str]) -> dict[str, int]:
        """Map every name to a block index (0 = stem … n-1 = top) or ``HEAD``.

        Unmatched names fall into the head: they are new or unknown layers, and a layer that
        is never trained would be worse than one trained from the start.
        """
        keys = {name: self.key(name) for name in names}
        ordered = sorted({k for k in keys.values() if isinstance(k, tuple)})
        index = {k: i + 1 for i, k in enumerate(ordered)}
        last = len(ordered)  # the neck joins the top block
        out: dict[str, int] = {}
        for name, k in keys.items():
            if k == "stem":
                out[name] = 0
            elif k == "neck":
                out[name] = last
            elif isinstance(k, tuple):
                out[name] = index[k]
            else:
                out[name] = HEAD
        return out

    def is_no_weight_decay(self, name: str) -> bool:
        return (
            self.no_weight_decay is not None and re.search(self.no_weight_decay, name) is not None
        )
