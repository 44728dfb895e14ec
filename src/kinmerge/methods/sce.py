"""SCE: Select, Calculate, Erase (Wan et al. 2024, "FuseChat: Knowledge Fusion of Chat
Models", arXiv:2408.07990)."""
from __future__ import annotations

import torch

from kinmerge.methods.task_vector import task_vectors


def sce(tensors: list[torch.Tensor], base: torch.Tensor, *, select_topk: float = 1.0,
        int8_mask: bool = False, generator=None) -> torch.Tensor:
    """theta_0 + the task vectors' sign-agreeing mean, weighted by their mean squares.

    Select: keep the `select_topk` fraction of positions where the task vectors vary most
    across models (all with 1.0). Calculate: weight model k by mean(tau_k^2) / sum over
    models (equal weights if that sum is ~0). Erase: drop entries whose sign disagrees with
    the elected sign of sum_k tau_k, then divide by the kept weights. `int8_mask` only
    chose mergekit's mask dtype; it changes no number.

    >>> sce([torch.tensor([2., -1.]), torch.tensor([1., 1.])], torch.zeros(2))
    tensor([1.7143, 1.0000])
    """
    deltas = task_vectors(tensors, base)  # (n_models, *shape)
    if select_topk < 1:
        deltas = deltas * select_mask(deltas, select_topk).unsqueeze(0)
    elected = (deltas.sum(dim=0) >= 0).to(deltas.dtype) * 2 - 1  # +1 / -1, 0 -> +1
    agree = deltas.sign() == elected  # (n_models, *shape); a zero entry never agrees
    w = model_weights(deltas)
    w = w.view(-1, *([1] * (deltas.dim() - 1))) * agree  # (n_models, *shape)
    merged = (deltas * w).sum(dim=0) / w.sum(dim=0).clamp(min=1e-6)
    return base + merged


def select_mask(deltas: torch.Tensor, fraction: float) -> torch.Tensor:
    """(*shape) 0/1 mask of the int(fraction * nonzero) positions of largest variance across
    models (population variance; nonzero counts positions that vary at all)."""
    if fraction <= 0:
        return torch.zeros_like(deltas[0])
    if fraction >= 1:
        return torch.ones_like(deltas[0])
    var = torch.var(deltas, dim=0, unbiased=False)
    k = int(torch.count_nonzero(var) * fraction)
    mask = torch.zeros_like(var)
    if k:
        mask.view(-1)[torch.topk(var.abs().view(-1), k=k, largest=True).indices] = 1
    return mask


def model_weights(deltas: torch.Tensor) -> torch.Tensor:
    """(n_models,) mean square of each task vector, normalized to sum 1."""
    w = deltas.square().reshape(deltas.shape[0], -1).mean(dim=1)
    total = torch.sum(w).item()
    if abs(total) < 1e-6:
        return torch.ones_like(w) / w.shape[0]
    return w / total
