"""DELLA (Deep et al. 2024, "DELLA-Merging: Reducing Interference in Model Merging through
Magnitude-Based Sampling"): drop entries at random, larger magnitudes kept more often."""
from __future__ import annotations

import torch

from kinmerge.errors import KinmergeError
from kinmerge.methods.registry import Method, Param, register
from kinmerge.methods.sparsify import combine
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
    for k, (d, e) in enumerate(zip(density, epsilon)):
        if d >= 1:
            continue
        p = keep_probabilities(deltas[k], d, e)
        keep = (torch.rand(p.shape, generator=generator) < p).to(deltas.device)
        kept = deltas[k] * keep.to(deltas.dtype)
        deltas[k] = kept / p.to(deltas) if rescale else kept  # unbiased: E[kept/p] = delta
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


_PAPER = "Deep et al. 2024, DELLA-Merging (arXiv:2406.11617)"
_P = (Param("weight", "model"), Param("density", "model", 1.0), Param("epsilon", "model", 0.1))
register(Method(work="select", name="della", fn=della, needs_base=True, stochastic=True,
                paper=_PAPER,
                params=_P + (Param("normalize", "global", True, bool),
                             Param("rescale", "global", True, bool),
                             Param("lambda", "global", 1.0)),
                summary="Magnitude-ranked random drop, rescale, then TIES election."))
register(Method(work="select", name="della_linear", fn=della_linear, needs_base=True,
                stochastic=True,
                paper=_PAPER, params=_P + (Param("normalize", "global", False, bool),
                                           Param("rescale", "global", True, bool),
                                           Param("lambda", "global", 1.0)),
                summary="Magnitude-ranked random drop, rescale, then task arithmetic."))
