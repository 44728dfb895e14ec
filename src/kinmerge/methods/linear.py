"""Linear interpolation / model soups (Wortsman et al. 2022, "Model soups")."""
from __future__ import annotations

import torch

from kinmerge.methods.registry import Method, Param, register


def linear(tensors: list[torch.Tensor], base: torch.Tensor | None, *, weight: list[float],
           normalize: bool = True, generator=None) -> torch.Tensor:
    """sum_k w_k x_k, divided by sum_k w_k when normalize.

    >>> linear([torch.tensor([1., 2.]), torch.tensor([3., 6.])], None, weight=[1, 3])
    tensor([2.5000, 5.0000])
    """
    stacked = torch.stack(tensors)  # (n_models, *shape)
    w = torch.tensor(weight, dtype=stacked.dtype, device=stacked.device)
    w = w.reshape(-1, *([1] * (stacked.dim() - 1)))
    out = (stacked * w).sum(dim=0)
    if normalize:
        out = out / w.sum(dim=0)
    return out


register(Method(
    name="linear", fn=linear, needs_base=False,
    params=(Param("weight", "model"), Param("normalize", "global", True, bool)),
    paper="Wortsman et al. 2022, Model soups (arXiv:2203.05482)",
    summary="Weighted average of the models (a uniform soup with equal weights)."))
