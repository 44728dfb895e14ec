"""DELLA (Deep et al. 2024, "DELLA-Merging: Reducing Interference in Model Merging through
Magnitude-Based Sampling"): drop entries at random, larger magnitudes kept more often."""
from __future__ import annotations

import torch

from kinmerge.errors import KinmergeError
from kinmerge.methods.sparsify import combine, rescale_l1
from kinmerge.methods.task_arithmetic import task_vectors


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


def magprune(deltas: torch.Tensor, density: list[float], epsilon: list[float], rescale: bool,
             generator: torch.Generator) -> torch.Tensor:
    """Drop entries of each task vector at random, keeping with probability rising with
    magnitude rank; with `rescale`, scale the kept vector back to the task vector's L1 norm
    (mergekit's rule, as for DARE; the paper divides each kept entry by its own p)."""
    for k, (d, e) in enumerate(zip(density, epsilon)):
        if d >= 1:
            continue
        if d <= 0:
            deltas[k].zero_()
            continue
        p = keep_probabilities(deltas[k], d, e)
        keep = (torch.rand(p.shape, generator=generator) < p).to(deltas.device)
        kept = deltas[k] * keep.to(deltas.dtype)
        deltas[k] = rescale_l1(deltas[k], kept) if rescale else kept
    return deltas


def della(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
          density: list[float], epsilon: list[float], normalize: bool = True,
          rescale: bool = True, lambda_: float = 1.0,
          generator: torch.Generator) -> torch.Tensor:
    """MagPrune each task vector, then TIES sign election and disjoint mean."""
    deltas = magprune(task_vectors(tensors, base), density, epsilon, rescale, generator)
    return combine(deltas, weight, base, elect=True, normalize=normalize, lambda_=lambda_)


def della_linear(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                 density: list[float], epsilon: list[float], normalize: bool = False,
                 rescale: bool = True, lambda_: float = 1.0,
                 generator: torch.Generator) -> torch.Tensor:
    """MagPrune each task vector, then task arithmetic."""
    deltas = magprune(task_vectors(tensors, base), density, epsilon, rescale, generator)
    return combine(deltas, weight, base, elect=False, normalize=normalize, lambda_=lambda_)
