"""Tensor name <-> layer index, found from the names themselves and config.json.

No table per model type: the layer stack is the name prefix followed by an integer
(`model.layers.N.`, `transformer.h.N.`, `encoder.layer.N.`, `gpt_neox.layers.N.`) that has the
most distinct indices, preferring the one whose count matches the config's layer count.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

NUMBERED = re.compile(r"^(?P<prefix>(?:[^.]+\.)*?[^.\d][^.]*\.)(?P<idx>\d+)\.(?P<rest>.+)$")
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
EMBED_HINTS = ("embed", "wte", "wpe", "word_embeddings", "position_embeddings",
               "token_type_embeddings", "tok_embeddings")


@dataclass(frozen=True)
class LayerScheme:
    """How one architecture numbers its layers."""

    prefix: str | None  # e.g. "model.layers."; None: no layer stack found
    num_layers: int
    config_key: str | None  # the config key holding the layer count, if any

    def index(self, name: str) -> int | None:
        """Layer index of `name`, or None for a tensor outside the stack."""
        if self.prefix is None or not name.startswith(self.prefix):
            return None
        head, _, _ = name[len(self.prefix):].partition(".")
        return int(head) if head.isdigit() else None

    def rename(self, name: str, new_index: int) -> str:
        """`name` moved to layer `new_index`."""
        old = self.index(name)
        assert old is not None, name
        return f"{self.prefix}{new_index}{name[len(self.prefix) + len(str(old)):]}"

    def suffix(self, name: str) -> str:
        """The part of a layer tensor's name after its index (`self_attn.q_proj.weight`)."""
        return name[len(self.prefix) + len(str(self.index(name))) + 1:]


def config_layer_key(config: dict) -> str | None:
    for k in LAYER_COUNT_KEYS:
        if isinstance(config.get(k), int):
            return k
    return None


def detect(names: list[str], config: dict | None = None) -> LayerScheme:
    """Find the layer stack among tensor `names`."""
    config = config or {}
    key = config_layer_key(config)
    want = config.get(key) if key else None
    stacks: dict[str, set[int]] = defaultdict(set)
    for n in names:
        m = NUMBERED.match(n)
        if m:
            stacks[m["prefix"]].add(int(m["idx"]))
    if not stacks:
        return LayerScheme(None, 0, key)
    prefix = max(stacks, key=lambda p: (len(stacks[p]) == want, len(stacks[p]), -len(p)))
    count = max(stacks[prefix]) + 1
    return LayerScheme(prefix, count, key)


def layer_count_problem(names: list[str], config: dict) -> str | None:
    """Why config.json's layer count disagrees with the layers the tensors hold, or None."""
    key = config_layer_key(config)
    scheme = detect(names, config)
    if key is None or scheme.prefix is None:
        return None
    present = {scheme.index(n) for n in names} - {None}
    want = config[key]
    if want == scheme.num_layers == len(present):
        return None
    gaps = sorted(set(range(scheme.num_layers)) - present)
    held = (f"layers {_ranges(sorted(present))} (missing: {_ranges(gaps)})" if gaps
            else f"{scheme.num_layers} layers ({scheme.prefix}0 to "
                 f"{scheme.prefix}{scheme.num_layers - 1})")
    return f"config.json says {key} = {want}, its tensors hold {held}"


def _ranges(xs: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5' (at most 8 runs shown)."""
    runs: list[list[int]] = []
    for x in xs:
        if runs and x == runs[-1][1] + 1:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    shown = [f"{a}-{b}" if b > a else str(a) for a, b in runs[:8]]
    return ", ".join(shown) + (", ..." if len(runs) > 8 else "")


def is_embedding(name: str) -> bool:
    """Input-side tensors outside the layer stack (they go with the first slice)."""
    return any(h in name for h in EMBED_HINTS)
