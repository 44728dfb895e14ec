"""Model Breadcrumbs' mask (Davari & Belilovsky 2024, "Model Breadcrumbs: Scaling Multi-Task
Model Merging with Sparse Masks"): drop a task vector's largest outliers and its small noise.
The methods are the `breadcrumbs` and `breadcrumbs_ties` rows of
`kinmerge.methods.task_vector`."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import mergekit_sort_key, topk_count_mask


def breadcrumb_mask(x: torch.Tensor, density: float, gamma: float,
                    topk: str = "stable") -> torch.Tensor:
    """Keep int(density·n) entries ranked just below the int(gamma·n) largest magnitudes."""
    n = x.numel()
    keep, top = int(density * n), int(gamma * n)
    top = min(top, n - keep)
    if topk == "mergekit":
        return mergekit_band_mask(x, n - keep - top, keep)
    return topk_count_mask(x, top + keep) & ~topk_count_mask(x, top)


def mergekit_band_mask(x: torch.Tensor, start: int, count: int) -> torch.Tensor:
    """Entries at ranks [start, start + count) of |x| in ascending order, ranked by torch's
    (unstable) sort of the magnitudes: mergekit's choice among equal magnitudes."""
    order = torch.sort(mergekit_sort_key(x), descending=False).indices
    mask = torch.zeros(x.numel(), dtype=torch.bool, device=x.device)
    mask[order[start:start + count]] = True
    return mask.reshape(x.shape)


def band(delta: torch.Tensor, density: float, gamma: float, *, topk: str = "stable",
         generator=None, inplace: bool = False) -> torch.Tensor:
    """delta with only its breadcrumb band kept (`breadcrumb_mask`), the rest set to 0.

    >>> band(torch.tensor([9., 1., 3., 2.]), 0.5, 0.25)
    tensor([0., 0., 3., 2.])
    """
    return delta * breadcrumb_mask(delta, density, gamma, topk).to(delta.dtype)
