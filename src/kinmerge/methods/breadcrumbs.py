"""Model Breadcrumbs (Davari & Belilovsky 2024, "Model Breadcrumbs: Scaling Multi-Task Model
Merging with Sparse Masks"): drop a task vector's largest outliers and its small noise."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import combine, mergekit_sort_key, rescale_l1, topk_count_mask
from kinmerge.methods.task_arithmetic import task_vectors


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


def _sparsify(tensors, base, density, gamma, rescale, topk) -> torch.Tensor:
    deltas = task_vectors(tensors, base)  # (n_models, *shape)
    for k, (d, g) in enumerate(zip(density, gamma)):
        if d < 1:  # density 1 keeps everything, the gamma outliers too (as in mergekit)
            kept = deltas[k] * breadcrumb_mask(deltas[k], d, g, topk).to(deltas.dtype)
            deltas[k] = rescale_l1(deltas[k], kept) if rescale else kept
    return deltas


def breadcrumbs(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                density: list[float], gamma: list[float], normalize: bool = False,
                rescale: bool = False, lambda_: float = 1.0, topk: str = "stable",
                generator=None) -> torch.Tensor:
    """Breadcrumb masks (with `rescale`, each masked task vector scaled back to its L1 norm),
    then task arithmetic.

    >>> breadcrumbs([torch.tensor([9., 1., 3., 2.])], torch.zeros(4), weight=[1],
    ...             density=[0.5], gamma=[0.25])
    tensor([0., 0., 3., 2.])
    """
    deltas = _sparsify(tensors, base, density, gamma, rescale, topk)
    return combine(deltas, weight, base, elect=False, normalize=normalize, lambda_=lambda_)


def breadcrumbs_ties(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                     density: list[float], gamma: list[float], normalize: bool = False,
                     rescale: bool = False, lambda_: float = 1.0, topk: str = "stable",
                     generator=None) -> torch.Tensor:
    """Breadcrumb masks, then TIES sign election and disjoint sum (mergekit's default:
    normalize false, so agreeing entries add up rather than average)."""
    deltas = _sparsify(tensors, base, density, gamma, rescale, topk)
    return combine(deltas, weight, base, elect=True, normalize=normalize, lambda_=lambda_)
