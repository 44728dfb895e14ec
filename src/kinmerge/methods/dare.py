"""DARE: drop and rescale task vectors (Yu et al. 2024, "Language Models are Super Mario:
Absorbing Abilities from Homologous Models as a Free Lunch"), alone or with TIES."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import bernoulli_mask, combine, keep_only, rescale_l1
from kinmerge.methods.task_arithmetic import task_vectors


def dare_drop(deltas: torch.Tensor, density: list[float], rescale: bool,
              generator: torch.Generator) -> torch.Tensor:
    """Keep each entry of tau_k with probability density_k; rescale to tau_k's L1 norm."""
    for k, d in enumerate(density):
        if d >= 1:
            continue
        keep = bernoulli_mask(deltas[k].shape, d, generator).to(deltas.device)
        kept = keep_only(deltas[k].clone(), keep)
        deltas[k] = rescale_l1(deltas[k], kept) if rescale else kept
    return deltas


def dare_linear(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                density: list[float], normalize: bool = False, rescale: bool = True,
                lambda_: float = 1.0, generator: torch.Generator) -> torch.Tensor:
    """DARE drop + rescale, then task arithmetic."""
    deltas = dare_drop(task_vectors(tensors, base), density, rescale, generator)
    return combine(deltas, weight, base, elect=False, normalize=normalize, lambda_=lambda_)


def dare_ties(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
              density: list[float], normalize: bool = False, rescale: bool = True,
              lambda_: float = 1.0, generator: torch.Generator) -> torch.Tensor:
    """DARE drop + rescale, then TIES sign election and disjoint merge."""
    deltas = dare_drop(task_vectors(tensors, base), density, rescale, generator)
    return combine(deltas, weight, base, elect=True, normalize=normalize, lambda_=lambda_)
