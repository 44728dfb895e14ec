"""TIES-merging's trim (Yadav et al. 2023, "TIES-Merging: Resolving Interference When Merging
Models"): keep each task vector's largest magnitudes. The method itself (trim, elect sign,
disjoint merge) is the `ties` row of `kinmerge.methods.task_vector`."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import keep_only, topk_mask


def trim(delta: torch.Tensor, density: float, *, topk: str = "stable", generator=None,
         inplace: bool = False) -> torch.Tensor:
    """delta with all but its int(density · n) largest magnitudes set to 0.

    >>> trim(torch.tensor([3., -1., 2., 0.5]), 0.5)
    tensor([3., 0., 2., 0.])
    """
    return keep_only(delta if inplace else delta.clone(), topk_mask(delta, density, topk))
