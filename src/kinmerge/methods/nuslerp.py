"""NuSLERP: slerp between two models by weight, optionally of their task vectors, optionally
row by row (mergekit's reworked slerp; Shoemake 1985 for the interpolation itself)."""
from __future__ import annotations

import torch


EPS = 1e-8  # colinear when 1 - cos^2 <= EPS^2
NORM_FLOOR = 1e-7  # smallest norm a vector is divided by


def nuslerp(tensors: list[torch.Tensor], base: torch.Tensor | None, *, weight: list[float],
            nuslerp_row_wise: bool = False, nuslerp_flatten: bool = True,
            generator=None) -> torch.Tensor:
    """Spherical interpolation from tensors[0] to tensors[1] at t = w_1 / (w_0 + w_1).

    With a base, the two task vectors are interpolated and added back to the base (0.5
    when the weights sum to ~0). By default each tensor is one vector (`nuslerp_flatten`);
    otherwise every row is interpolated on its own (the last dimension's vectors), or every
    column with `nuslerp_row_wise`. Computed in the working dtype, as mergekit does.

    >>> nuslerp([torch.tensor([1., 0.]), torch.tensor([0., 1.])], None, weight=[1, 1])
    tensor([0.7071, 0.7071])
    """
    a, b = tensors
    total = weight[0] + weight[1]
    t = 0.5 if abs(total) < 1e-6 else weight[1] / total
    dim = 0 if nuslerp_row_wise else -1
    if base is None:
        return slerp_vectors(t, a, b, dim=dim, flatten=nuslerp_flatten)
    return base + slerp_vectors(t, a - base, b - base, dim=dim, flatten=nuslerp_flatten)


def slerp_vectors(t: float, a: torch.Tensor, b: torch.Tensor, *, dim: int = -1,
                  flatten: bool = False) -> torch.Tensor:
    """Slerp of the vectors along `dim` of a and b (of the whole tensors when `flatten`);
    colinear pairs are lerped."""
    shape = a.shape
    if flatten:
        a, b = a.reshape(-1), b.reshape(-1)
    elif dim != -1:
        a, b = a.transpose(dim, -1), b.transpose(dim, -1)
    ua = a / torch.norm(a, dim=-1, keepdim=True).clamp(min=NORM_FLOOR)
    ub = b / torch.norm(b, dim=-1, keepdim=True).clamp(min=NORM_FLOOR)
    cos = (ua * ub).sum(dim=-1, keepdim=True).clamp(-1, 1)  # one per vector
    colinear = (1 - cos.square()) <= EPS**2
    theta = torch.acos(torch.where(colinear, 0, cos))  # the lerp branch stays finite
    out = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)
    out = torch.where(colinear, (1 - t) * a + t * b, out)
    if dim != -1 and not flatten:
        out = out.transpose(dim, -1)
    return out.reshape(shape)
