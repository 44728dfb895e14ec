"""Passthrough: copy one source's tensor (with `slices`, stacks layers: a frankenmerge)."""
from __future__ import annotations

import torch


def passthrough(tensors: list[torch.Tensor], base: torch.Tensor | None, *,
                scale: list[float] | None = None, generator=None) -> torch.Tensor:
    """The single input tensor, times its optional `scale`.

    >>> passthrough([torch.tensor([1., 2.])], None, scale=[2.0])
    tensor([2., 4.])
    """
    (x,) = tensors
    s = scale[0] if scale else 1.0
    return x if s == 1.0 else x * s
