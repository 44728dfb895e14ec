"""One recipe per registered method over a family large enough that torch's reductions split
(256 x 512 MLP matrices, 65K-262K elements), shared by the thread-count and device byte tests."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from kinmerge.methods import REGISTRY
from kinmerge.zoo.synthetic import synthetic_llama

DTYPES = ("float32", "bfloat16")
# parameters that make each method do its reductions and masks (defaults elsewhere)
MODEL_PARAMS = {"weight": [0.5, 0.3, 0.2], "density": [0.5, 0.6, 0.7],
                "epsilon": [0.1, 0.1, 0.1], "gamma": [0.01, 0.01, 0.01], "scale": [1.0]}
GLOBAL_PARAMS = {"t": 0.3, "select_topk": 0.5}


def build_family(root: Path) -> dict[str, tuple[str, list[str]]]:
    """A base and three fine-tunes per dtype, one layer, 256 x 512 MLP matrices."""
    out = {}
    for dt in DTYPES:
        kw = dict(layers=1, hidden=256, intermediate=512, vocab=32, heads=4,
                  dtype=getattr(torch, dt))
        base = synthetic_llama(root / dt / "base", seed=0, **kw)
        fts = [synthetic_llama(root / dt / f"ft{i}", base=base, seed=i, delta=0.5, **kw)
               for i in (1, 2, 3)]
        out[dt] = (str(base), [str(f) for f in fts])
    return out


def recipe(name: str, dtype: str, family) -> dict:
    """A recipe for method `name` in `dtype` that exercises its parameters."""
    m = REGISTRY[name]
    base, fts = family[dtype]
    n = m.n_models or 3
    models = []
    for i, ft in enumerate(fts[:n]):
        params = {p.name: MODEL_PARAMS[p.name][i] for p in m.params if p.scope == "model"
                  if p.name in MODEL_PARAMS}
        models.append({"model": ft, **({"parameters": params} if params else {})})
    if m.with_base:  # slerp, nearswap: the base is one of the listed models
        models.insert(0, {"model": base})
    r = {"merge_method": name, "models": models, "dtype": dtype}
    if m.takes_base:
        r["base_model"] = base
    params = {p.name: GLOBAL_PARAMS[p.name] for p in m.params
              if p.scope == "global" and p.name in GLOBAL_PARAMS}
    if params:
        r["parameters"] = params
    return r


def digest(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """sha256 of each tensor's bytes, by name."""
    return {n: hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
            for n, t in sorted(tensors.items())}
