"""RAM and RAM+ (tensor-local): Reinforced Agent Merging (arXiv:2601.13572). Entries only one
model changed are kept whole; entries several changed are averaged over those models."""
from __future__ import annotations

import torch

from kinmerge.methods.task_vector import task_vectors


def ram(tensors: list[torch.Tensor], base: torch.Tensor, *, epsilon: float = 1e-5,
        generator=None) -> torch.Tensor:
    """theta_0 + per entry, the mean of the task-vector entries with |tau| > epsilon.

    An entry changed by one model takes that model's change unscaled (a plain mean would
    dilute it by the number of models); entries changed by none stay the base's.

    >>> ram([torch.tensor([2., 4., 0.]), torch.tensor([0., 2., 0.])], torch.zeros(3))
    tensor([2., 3., 0.])
    """
    tv, changed, counts = _changes(tensors, base, epsilon)
    unique, shared = counts == 1, counts > 1
    tv = tv * changed
    merged = ((tv * unique) + (tv * shared / counts.clamp(min=1))).sum(dim=0, keepdim=True)
    return base + merged.reshape_as(base)


def ramplus_tl(tensors: list[torch.Tensor], base: torch.Tensor, *, accum: torch.dtype,
               r: float = 0.1, alpha: float = 0.2, epsilon: float = 1e-5,
               generator=None) -> torch.Tensor:
    """RAM with each model's unique changes scaled up by 1 + r * clamp(rho_k, 0, alpha).

    rho_k = (entries model k shares with others) / (entries only model k changed), counted
    in this tensor ("tensor-local"): a model whose changes mostly overlap others' gets its
    few unique ones amplified. The scale is in `accum` (the plan's choice from the registry:
    float32, float64 for float64 work), so bfloat16 inputs are merged in float32 before the
    result is rounded, as in mergekit.

    >>> ramplus_tl([torch.tensor([2., 4., 0.]), torch.tensor([0., 2., 0.])], torch.zeros(3),
    ...            accum=torch.float32)
    tensor([2.0400, 3.0000, 0.0000])
    """
    tv, changed, counts = _changes(tensors, base, epsilon)
    unique, shared = counts == 1, counts > 1
    rho = (changed & shared).sum(dim=1) / (changed & unique).sum(dim=1).clamp(min=epsilon)
    scale = (1 + r * rho.clamp(min=0, max=alpha)).to(accum)  # (n_models,)
    tv = tv * changed
    merged = ((tv * unique * scale.unsqueeze(-1)) + (tv * shared / counts.clamp(min=1)))
    return base + merged.sum(dim=0, keepdim=True).reshape_as(base)


def _changes(tensors: list[torch.Tensor], base: torch.Tensor, epsilon: float):
    """Task vectors (n_models, numel), which entries each model changed (|tau| > epsilon),
    and how many models changed each entry (1, numel)."""
    tv = task_vectors(tensors, base).view(len(tensors), -1)
    changed = tv.abs() > epsilon
    return tv, changed, changed.sum(dim=0, keepdim=True)
