"""Spherical linear interpolation between two models (Shoemake 1985; popularised for model
merging by mergekit)."""
from __future__ import annotations

import math

import torch

from kinmerge.methods.registry import Method, Param, register

DOT_THRESHOLD = 0.9995
EPS = 1e-8


def slerp(tensors: list[torch.Tensor], base: torch.Tensor, *, t: float,
          generator=None) -> torch.Tensor:
    """Interpolate from `base` (t=0) to `tensors[0]` (t=1) along the great circle.

    Each tensor is one vector. Computed in float32 at least, as mergekit does (it converts to
    float32 numpy), so a bfloat16 recipe matches its output.

    >>> slerp([torch.tensor([0., 1.])], torch.tensor([1., 0.]), t=0.5)
    tensor([0.7071, 0.7071])
    """
    a, b = base, tensors[0]
    if a.dtype not in (torch.float32, torch.float64):
        a, b = a.float(), b.float()
    na, nb = a.norm(), b.norm()
    ua = a / na if na > EPS else a
    ub = b / nb if nb > EPS else b
    dot = float((ua * ub).sum())
    if abs(dot) > DOT_THRESHOLD:
        return (1 - t) * a + t * b
    omega = math.acos(dot)
    sin_omega = math.sin(omega)
    s0 = math.sin((1 - t) * omega) / sin_omega
    s1 = math.sin(t * omega) / sin_omega
    return s0 * a + s1 * b


register(Method(
    name="slerp", fn=slerp, needs_base=True, n_models=1,
    params=(Param("t", "global"),),
    paper="Shoemake 1985, Animating rotation with quaternion curves (SIGGRAPH)",
    summary="Spherical interpolation from the base (t=0) to the one other model (t=1)."))
