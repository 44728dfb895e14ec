"""DARE: drop and rescale task vectors (Yu et al. 2024, "Language Models are Super Mario:
Absorbing Abilities from Homologous Models as a Free Lunch"), alone or with TIES."""
from __future__ import annotations

import torch

from kinmerge.methods.registry import INT8_MASK, UNIT, Method, Param, register
from kinmerge.methods.sparsify import bernoulli_mask, combine, keep_only, rescale_l1
from kinmerge.methods.task_arithmetic import task_vectors, zero_weight_sum


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


_PARAMS = (Param("weight", "model"), Param("density", "model", 1.0, range=UNIT),
           Param("normalize", "global", False, bool), Param("rescale", "global", True, bool),
           Param("lambda", "global", 1.0), INT8_MASK)
_PAPER = "Yu et al. 2024, Language Models are Super Mario (arXiv:2311.03099)"
register(Method(work="select", name="dare_linear", fn=dare_linear, needs_base=True, stochastic=True,
                caution=zero_weight_sum,
                params=_PARAMS, paper=_PAPER,
                summary="Randomly drop task-vector entries, rescale, then task arithmetic."))
register(Method(work="select", name="dare_ties", fn=dare_ties, needs_base=True, stochastic=True,
                params=_PARAMS, paper=_PAPER + "; with TIES sign election",
                summary="Randomly drop task-vector entries, rescale, then TIES election."))
