"""Linear interpolation / model soups (Wortsman et al. 2022, "Model soups")."""
from __future__ import annotations

import torch

from kinmerge.methods.registry import Method, Param, register


def linear(tensors: list[torch.Tensor], base: torch.Tensor | None, *, weight: list[float],
           normalize: bool = True, generator=None) -> torch.Tensor:
    """sum_k w_k x_k, divided by sum_k w_k when normalize.

    Accumulated in float32 (float64 for float64 inputs) one model at a time, whatever the
    working dtype: mergekit does so, and a bfloat16 sum would lose the small weights'
    contributions. The executor rounds the result back to the working dtype.

    >>> linear([torch.tensor([1., 2.]), torch.tensor([3., 6.])], None, weight=[1, 3])
    tensor([2.5000, 5.0000])
    """
    acc = torch.float64 if tensors[0].dtype == torch.float64 else torch.float32
    w = torch.tensor(weight, dtype=acc, device=tensors[0].device)  # (n_models,)
    out = torch.zeros(tensors[0].shape, dtype=acc, device=tensors[0].device)
    for x, w_k in zip(tensors, w):
        # out += w_k * x, model by model: the rounding mergekit gets. Upcasting x first is
        # exact and keeps torch on its vectorized same-dtype kernel (mixed dtypes are slow)
        out.addcmul_(x.to(acc), w_k)
    if normalize:
        out.div_(w.sum())
    return out


register(Method(
    name="linear", fn=linear, needs_base=False,
    params=(Param("weight", "model"), Param("normalize", "global", True, bool)),
    paper="Wortsman et al. 2022, Model soups (arXiv:2203.05482)",
    summary="Weighted average of the models (a uniform soup with equal weights)."))
