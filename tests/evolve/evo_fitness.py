"""Synthetic fitness functions for the evolve tests (importable by spawned workers)."""
from __future__ import annotations

from pathlib import Path

import torch

import kinmerge

TARGET_WEIGHTS = (0.8, 0.3)
_TARGETS: dict[tuple, dict[str, torch.Tensor]] = {}


def _target(recipe) -> dict[str, torch.Tensor]:
    # the family's folder holds base/, ft1/, ft2/ (see conftest): the target uses those
    root = Path(recipe.model_refs()[0]).parent
    refs = (str(root / "base"), str(root / "ft1"), str(root / "ft2"))
    if refs not in _TARGETS:
        _TARGETS[refs] = kinmerge.merge_to_memory({
            "merge_method": "task_arithmetic", "base_model": refs[0], "dtype": "float32",
            "models": [{"model": m, "parameters": {"weight": w}}
                       for m, w in zip(refs[1:], TARGET_WEIGHTS)]}).tensors
    return _TARGETS[refs]


def closeness(candidate, split: str) -> float:
    """1 / (1 + 1000 * mean squared distance to base + 0.8 tau_1 + 0.3 tau_2): 1 at the target."""
    target = _target(candidate.merged.plan.recipe)
    t = candidate.merged.tensors
    mse = sum(float(((t[n] - target[n]) ** 2).mean()) for n in target) / len(target)
    return 1.0 / (1.0 + 1000.0 * mse)


def logit_norm(candidate, split: str) -> dict[str, float]:
    """A score that needs the model to run: a bounded function of its logits."""
    with torch.no_grad():
        logits = candidate.model(torch.arange(8).unsqueeze(0)).logits
    return {"logits": float(torch.sigmoid(logits.std()))}


def slow_closeness(candidate, split: str) -> float:
    """closeness, slowed so a test can kill the run between trials."""
    import time

    time.sleep(0.15)
    return closeness(candidate, split)
