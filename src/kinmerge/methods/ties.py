"""TIES-merging (Yadav et al. 2023, "TIES-Merging: Resolving Interference When Merging
Models"): trim, elect sign, disjoint merge."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import combine, keep_only, rescale_l1, topk_mask
from kinmerge.methods.task_arithmetic import task_vectors


def ties(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
         density: list[float], normalize: bool = True, rescale: bool = False,
         lambda_: float = 1.0, topk: str = "stable", generator=None) -> torch.Tensor:
    """theta_0 + lambda * disjoint mean of the trimmed, sign-agreeing weighted task vectors.

    With `rescale` (mergekit accepts it; off by default) each trimmed task vector is scaled
    back to its untrimmed L1 norm.

    >>> ties([torch.tensor([3., -1.]), torch.tensor([-1., -2.])], torch.zeros(2),
    ...      weight=[1, 1], density=[1, 1])
    tensor([ 3.0000, -1.5000])
    """
    deltas = task_vectors(tensors, base)  # (n_models, *shape)
    for k, d in enumerate(density):
        if d < 1:  # trim: keep the top-k magnitudes of each task vector
            original = deltas[k].clone() if rescale else None
            keep_only(deltas[k], topk_mask(deltas[k], d, topk))
            if rescale:
                deltas[k] = rescale_l1(original, deltas[k])
    return combine(deltas, weight, base, elect=True, normalize=normalize, lambda_=lambda_)
