"""Where two models are related: kinship per layer and per module kind.

Per-tensor Moments are summed within each group, so every row is the exact metric on that
group's part of the delta vector (not an average of per-tensor values).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

from kinmerge.kinship.metrics import pair_metrics
from kinmerge.kinship.stats import Moments, total
from kinmerge.core.layers import detect, is_embedding

KINDS = ("embeddings", "attention", "mlp", "norms", "other")
NORM = re.compile(r"norm|(^|\.)ln_?[a-z0-9]*\.")
ATTENTION = re.compile(r"attn|attention|(^|\.)(q|k|v|o|qkv)_proj\.|\.(query|key|value)\.")
# BERT's feed-forward output is `layer.N.output.dense` (its attention output is caught above)
MLP = re.compile(r"mlp|feed_forward|ffn|(gate|up|down)_proj|\.fc\d|c_fc|c_proj|intermediate"
                 r"|experts|\.w[123]\.|layers?\.\d+\.output\.")
OUTSIDE = "outside layers"  # row label for tensors not in the layer stack


def module_kind(name: str) -> str:
    """attention / mlp / embeddings / norms / other, from the tensor's name."""
    low = name.lower()
    if NORM.search(low):
        return "norms"
    if is_embedding(low) or "lm_head" in low:
        return "embeddings"
    if ATTENTION.search(low):
        return "attention"
    if MLP.search(low):
        return "mlp"
    return "other"


def _row(label, parts: list[Moments], metrics, absolute_cosine) -> dict:
    m = total(parts)
    return {"group": label, "n": m.n, **pair_metrics(m, 0, 1, metrics, absolute_cosine)}


def breakdown(per_tensor: Sequence[tuple[str, Moments]], metrics: Sequence[str],
              config: dict | None = None, absolute_cosine: bool = False) -> dict[str, list]:
    """{"layers": rows by layer index (then one row outside the stack), "kinds": rows by kind}.

    Each row: {"group", "n", <metric>: value}.
    """
    scheme = detect([n for n, _ in per_tensor], config)
    layers: dict[int | str, list[Moments]] = defaultdict(list)
    kinds: dict[str, list[Moments]] = defaultdict(list)
    for name, m in per_tensor:
        idx = scheme.index(name)
        layers[OUTSIDE if idx is None else idx].append(m)
        kinds[module_kind(name)].append(m)
    order = sorted(k for k in layers if k != OUTSIDE) + ([OUTSIDE] if OUTSIDE in layers else [])
    return {
        "layers": [_row(k, layers[k], metrics, absolute_cosine) for k in order],
        "kinds": [_row(k, kinds[k], metrics, absolute_cosine) for k in KINDS if k in kinds],
    }
