"""Shared pieces of the golden-fixture parity tests (mergekit's outputs kept as fixtures)."""
from __future__ import annotations

import torch


def resolve_refs(obj, paths: dict[str, str]):
    """A fixture's recipe with its model names (`model`, `base_model`) replaced by paths."""
    if isinstance(obj, dict):
        return {k: (paths[v] if k in ("model", "base_model") else resolve_refs(v, paths))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve_refs(v, paths) for v in obj]
    return obj


def ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise distance in units in the last place (-0.0 and +0.0 are equal)."""
    def ordered(t: torch.Tensor) -> torch.Tensor:
        bits, mag = ((t.view(torch.int32).long(), 0x7FFFFFFF) if t.dtype == torch.float32
                     else (t.view(torch.int16).long(), 0x7FFF))
        return torch.where(bits < 0, -(bits & mag), bits)
    return (ordered(a) - ordered(b)).abs()


def unpack(flat: torch.Tensor, layout: list) -> dict[str, torch.Tensor]:
    """The named tensors of one model packed flat, given its layout [(name, shape), ...]."""
    out, at = {}, 0
    for name, shape in layout:
        n = torch.Size(shape).numel()
        out[name] = flat[at:at + n].reshape(shape)
        at += n
    assert at == flat.numel()
    return out
