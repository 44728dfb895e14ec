"""Arcee Fusion: keep the fine-tune's changes only where they matter most (Arcee AI 2025,
https://www.arcee.ai/blog/meet-mergekit-v0-1-arcee-fusion-expanded-model-support-multi-gpu-acceleration)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


SAMPLE = 1_000_000  # quantiles of a larger tensor come from this many sampled entries
KL_EPS = 1e-8


def arcee_fusion(tensors: list[torch.Tensor], base: torch.Tensor, *, accum: torch.dtype,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """base + (other - base) where importance >= median + 1.5 * IQR of importance.

    importance = |other - base| * KL(softmax(other) || softmax(base)), the KL taken per row
    (last dimension). Quantiles are read off the sorted importances at index q * (n - 1);
    above 10^6 entries, off 10^6 entries drawn with replacement from `generator`. The mask
    is in `accum` (the plan's choice from the registry: float32, float64 for float64 work),
    so bfloat16 inputs are merged in float32 before the result is rounded, as in mergekit.

    >>> arcee_fusion([torch.tensor([[0., 0., 0., 5.]])], torch.zeros(1, 4), accum=torch.float32)
    tensor([[0., 0., 0., 5.]])
    """
    other = tensors[0]
    importance = _importance(other, base)
    q1, median, q3 = _quantiles(importance, torch.tensor([0.25, 0.5, 0.75]), generator)
    keep = (importance >= median + 1.5 * (q3 - q1)).to(accum)
    return base + (other - base) * keep


def _importance(other: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    p = F.softmax(other, dim=-1) + KL_EPS
    q = F.softmax(base, dim=-1) + KL_EPS
    kl = torch.sum(p * torch.log(p / q), dim=-1, keepdim=True)  # (*rows, 1)
    return (other - base).abs() * kl


def _quantiles(x: torch.Tensor, q: torch.Tensor, generator) -> torch.Tensor:
    flat = x.reshape(-1)
    if flat.numel() > SAMPLE:
        pick = torch.randint(flat.numel(), (SAMPLE,), generator=generator)
        flat = flat[pick.to(flat.device)]
    ordered, _ = torch.sort(flat)
    return ordered[(q.to(ordered.device) * (ordered.numel() - 1)).long()]
