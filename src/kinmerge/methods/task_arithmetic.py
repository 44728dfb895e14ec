"""Task arithmetic (Ilharco et al. 2023, "Editing Models with Task Arithmetic")."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import combine


def task_vectors(tensors: list[torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """(n_models, *shape): tau_k = theta_k - theta_0."""
    out = torch.empty((len(tensors), *base.shape), dtype=base.dtype, device=base.device)
    for k, t in enumerate(tensors):
        torch.sub(t, base, out=out[k])  # straight into place: no per-model temporaries
    return out


def task_arithmetic(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                    normalize: bool = False, lambda_: float = 1.0,
                    generator=None) -> torch.Tensor:
    """theta_0 + lambda * sum_k w_k tau_k (/ sum_k w_k when normalize). w_k < 0 negates a task.

    >>> task_arithmetic([torch.tensor([2., 0.])], torch.tensor([1., 1.]), weight=[-1.0])
    tensor([0., 2.])
    """
    return combine(task_vectors(tensors, base), weight, base, elect=False,
                   normalize=normalize, lambda_=lambda_)
