"""NearSwap: take the other model's value where it is already near the base's
(alchemonaut 2024, QuartetAnemoi-70B-t0.0001, https://huggingface.co/alchemonaut)."""
from __future__ import annotations

import torch


def nearswap(tensors: list[torch.Tensor], base: torch.Tensor, *, t: float,
             generator=None) -> torch.Tensor:
    """Per entry, interpolate base -> other by w = clamp(t / |other - base|, 0, 1).

    Entries closer than t move all the way to the other model; farther ones move by t (in
    absolute terms). |difference| is floored at 1e-6. Computed in the working dtype.

    >>> nearswap([torch.tensor([1.0, 0.5, 4.0])], torch.zeros(3), t=1.0)
    tensor([1.0000, 0.5000, 1.0000])
    """
    other = tensors[0]
    w = (t / torch.abs(base - other).clamp(min=1e-6)).clamp(min=0, max=1)
    return w * other + (1 - w) * base
