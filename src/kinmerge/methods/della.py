"""DELLA's MagPrune (Deep et al. 2024, "DELLA-Merging: Reducing Interference in Model Merging
through Magnitude-Based Sampling"): drop entries at random, larger magnitudes kept more often.
The methods are the `della` and `della_linear` rows of `kinmerge.methods.task_vector`."""
from __future__ import annotations

import torch

from kinmerge.errors import KinmergeError


def keep_probabilities(x: torch.Tensor, density: float, epsilon: float) -> torch.Tensor:
    """Per entry: density − ε for the smallest |x| of its row, rising linearly by rank to
    density + ε for the largest (MagPrune)."""
    if not (0 < density - epsilon and density + epsilon < 1):
        raise KinmergeError(f"della needs 0 < density ± epsilon < 1, got density {density}, "
                            f"epsilon {epsilon}", where="della parameters",
                            fix="lower epsilon or move density away from 0 and 1")
    rows = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)
    ranks = rows.abs().float().argsort(dim=1).argsort(dim=1).float()  # 0 = smallest
    span = max(rows.shape[1] - 1, 1)
    return ((density - epsilon) + ranks / span * 2 * epsilon).reshape(x.shape)


def magprune(delta: torch.Tensor, density: float, epsilon: float, *,
             generator: torch.Generator, topk=None, inplace: bool = False) -> torch.Tensor:
    """delta with each entry kept with a probability rising with its magnitude rank
    (`keep_probabilities`), the others set to 0; density 0 drops every entry and draws
    nothing from the generator. The mask is made on the CPU whatever delta's device."""
    if density <= 0:
        return torch.zeros_like(delta)
    # ranked and drawn on the CPU: the draw comes from the per-tensor CPU generator, and a
    # GPU's sort orders equal magnitudes otherwise, so the mask does not depend on the device
    p = keep_probabilities(delta.cpu(), density, epsilon)
    keep = (torch.rand(p.shape, generator=generator) < p).to(delta.device)
    return delta * keep.to(delta.dtype)
