"""Spherical linear interpolation between two models (Shoemake 1985; popularised for model
merging by mergekit)."""
from __future__ import annotations

import torch


DOT_THRESHOLD = 0.9995
EPS = 1e-8
BLOCK = 1 << 20  # elements per block of the norms and the dot product


def slerp(tensors: list[torch.Tensor], base: torch.Tensor, *, t: float,
          accum: torch.dtype, generator=None) -> torch.Tensor:
    """Interpolate from `base` (t=0) to `tensors[0]` (t=1) along the great circle.

    Each tensor is one vector. Everything, the scalars included, is computed in `accum`
    (the plan's choice from the registry: float32, float64 for float64 work), reducing in
    blocks of 2**20 elements, as mergekit 0.1.5 does: the coefficients then round exactly as
    its do.

    >>> slerp([torch.tensor([0., 1.])], torch.tensor([1., 0.]), t=0.5, accum=torch.float32)
    tensor([0.7071, 0.7071])
    """
    dt = accum
    a, b = base.reshape(1, -1), tensors[0].reshape(1, -1)  # (1, numel): one vector each
    t_ = torch.tensor(t, dtype=dt, device=base.device)
    if a.shape[1] == 0:
        return ((1 - t_) * a.to(dt) + t_ * b.to(dt)).reshape(base.shape)
    na, nb = _norm(a, dt), _norm(b, dt)
    na = torch.where(na > EPS, na, 1)  # a (near-)zero vector is left unnormalized
    nb = torch.where(nb > EPS, nb, 1)
    dot = torch.stack([(a[:, i:i + BLOCK].to(dt) / na * (b[:, i:i + BLOCK].to(dt) / nb))
                       .sum(dim=1, keepdim=True) for i in range(0, a.shape[1], BLOCK)])
    dot = dot.sum(dim=0).clamp(-1, 1)
    if float(dot.abs()) > DOT_THRESHOLD:  # nearly parallel: plain lerp
        c0, c1 = 1 - t_, t_
    else:
        omega = torch.acos(dot)
        sin_omega = torch.sin(omega)
        c0 = torch.sin((1 - t_) * omega) / sin_omega
        c1 = torch.sin(t_ * omega) / sin_omega
    out = torch.empty(a.shape, dtype=dt, device=base.device)
    for i in range(0, a.shape[1], BLOCK):  # blockwise: float32 scratch stays small
        out[:, i:i + BLOCK] = c0 * a[:, i:i + BLOCK].to(dt) + c1 * b[:, i:i + BLOCK].to(dt)
    return out.reshape(base.shape)


def _norm(x: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """(1, 1) L2 norm of the row vector x: the norm of its blocks' norms."""
    parts = [torch.linalg.vector_norm(x[:, i:i + BLOCK].to(dt), dim=1, keepdim=True)
             for i in range(0, x.shape[1], BLOCK)]
    return torch.linalg.vector_norm(torch.stack(parts), dim=0)
