"""Shared pieces of the task-vector methods: trim masks, drop masks, sign election, sums.

TIES = magnitude trim + elect + disjoint mean; DARE = Bernoulli drop + rescale; their
combinations are compositions of these functions.
"""
from __future__ import annotations

import torch

_F32_HIGH = 16  # radix-select on the upper 16 bits of a float32's bit pattern


def topk_mask(x: torch.Tensor, density: float) -> torch.Tensor:
    """Bool mask keeping k = int(density * numel) entries of largest |x| (TIES trim).

    A positive density keeps at least one entry, as mergekit does: on a small tensor (a
    norm vector) int(density * numel) can be 0 where the recipe asked for some.
    """
    k = max(1, int(density * x.numel())) if density > 0 else 0
    return topk_count_mask(x, k)


def topk_count_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask keeping exactly the k entries of largest |x|.

    The k-th largest magnitude is found by radix selection instead of a sort: the bit pattern
    of a non-negative float32 orders like the float, so a histogram of its upper 16 bits names
    the bucket holding the threshold, and only that bucket is searched. Among equal magnitudes
    at the threshold, the earliest in flat order survive.
    """
    n = x.numel()
    if k >= n:
        return torch.ones_like(x, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(x, dtype=torch.bool)
    mag = x.detach().abs().reshape(-1)
    mag = mag.float() if mag.dtype != torch.float64 else mag
    v = _kth_largest(mag, k)
    mask = mag > v
    need = k - int(mask.sum())
    if need:
        ties = torch.nonzero(mag == v).squeeze(1)
        mask[ties[:need]] = True
    return mask.reshape(x.shape)


def _kth_largest(mag: torch.Tensor, k: int) -> torch.Tensor:
    if mag.dtype != torch.float32 or mag.device.type != "cpu" or mag.numel() < 1 << 16:
        return torch.kthvalue(mag, mag.numel() - k + 1).values
    high = mag.view(torch.int32) >> _F32_HIGH  # (n,) bucket ids, ordered like magnitudes
    counts = torch.bincount(high, minlength=1 << 15)
    above = counts.flip(0).cumsum(0).flip(0)  # above[b] = entries in buckets >= b
    bucket = int(torch.nonzero(above >= k).max())
    higher = int(above[bucket + 1]) if bucket + 1 < len(above) else 0
    inside = mag[high == bucket]
    return torch.kthvalue(inside, inside.numel() - (k - higher) + 1).values


def bernoulli_mask(shape: torch.Size, density: float, generator: torch.Generator) -> torch.Tensor:
    """Bool mask keeping each entry with probability `density` (DARE drop).

    Drawn on the CPU from the per-tensor generator, so the mask does not depend on device.
    """
    return torch.rand(shape, generator=generator, dtype=torch.float32) < density


def rescale_l1(original: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Scale `kept` so its L1 norm equals that of `original` (mergekit's DARE rescale)."""
    before, after = original.abs().sum(), kept.abs().sum()
    if before < 1e-7 or after < 1e-7:
        return kept
    return kept * (before / after)


def elect_sign(weighted: torch.Tensor) -> torch.Tensor:
    """Bool mask (n_models, *shape): entries whose sign agrees with the elected sign.

    Elected sign: that of the weighted sum over models, + where the sum is 0 (TIES elect).
    """
    majority = torch.where(weighted.sum(dim=0) >= 0, 1, -1).to(weighted.dtype)
    return weighted.sign() == majority


def combine(deltas: torch.Tensor, weights: list[float], base: torch.Tensor, *, elect: bool,
            normalize: bool, lambda_: float) -> torch.Tensor:
    """base + lambda * (sum_k w_k d_k [sign-agreeing only] / divisor): the task-vector merge.

    deltas: (n_models, *shape). Arithmetic runs in deltas.dtype, weights included, in this
    order, because that is how mergekit computes and users expect its tensors.
    """
    w = torch.tensor(weights, dtype=deltas.dtype, device=deltas.device)
    w = w.reshape(-1, *([1] * (deltas.dim() - 1)))  # (n_models, 1, ...)
    weighted = deltas * w
    if elect:
        keep = elect_sign(weighted).to(deltas.dtype)
        mixed = (weighted * keep).sum(dim=0)
        divisor = (w * keep).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = weighted.sum(dim=0)
        divisor = w.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed = mixed / divisor
    if lambda_ != 1:
        mixed = mixed * lambda_
    return (base + mixed).to(base.dtype)
