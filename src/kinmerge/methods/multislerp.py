"""Multi-SLERP: a weighted barycentre of several models on the hypersphere (Goddard 2025,
"Multi-SLERP", https://goddard.blog/posts/multislerp-wow-what-a-cool-idea)."""
from __future__ import annotations

import torch

from kinmerge.errors import KinmergeError


def multislerp(tensors: list[torch.Tensor], base: torch.Tensor | None, *, weight: list[float],
               normalize_weights: bool = True, eps: float = 1e-8,
               generator=None) -> torch.Tensor:
    """Interpolate any number of tensors (task vectors, with a base) on the sphere.

    Each tensor is one vector. Steps: project onto the unit sphere; take the weighted mean
    direction; map every point into the tangent space there; average in that flat space;
    map back with the exponential map; scale by the weighted mean norm. Computed in the
    working dtype. One input is returned as it is.

    >>> multislerp([torch.tensor([2., 0.]), torch.tensor([0., 2.])], None, weight=[1, 1])
    tensor([1.4142, 1.4142])
    """
    if len(tensors) == 1:
        return tensors[0]
    x = torch.stack(tensors)  # (n_models, *shape)
    if base is not None:
        x -= base
    flat = x.view(x.shape[0], -1)  # (n_models, numel)
    w = torch.tensor(weight, dtype=x.dtype, device=x.device)
    if normalize_weights:
        w = w / w.sum()
    norms = torch.norm(flat, dim=-1, keepdim=True)  # (n_models, 1)
    units = flat / (norms + eps)
    mean = (units * w.view(-1, 1)).sum(0)
    mean_norm = torch.norm(mean)
    if mean_norm < eps:
        if x.shape[0] != 2:
            raise KinmergeError(
                "multislerp: the weighted mean direction of the inputs is zero (antipodal "
                "task vectors whose weights cancel)", where="multislerp weights",
                fix="use weights that do not balance out exactly")
        out = (x[0] * w[0] + x[1] * w[1]).view(x.shape[1:])  # two opposite inputs: lerp
        return out + base if base is not None else out
    mean = mean / mean_norm
    tangent = units - (units * mean).sum(-1, keepdim=True) * mean  # log map, per model
    step = (tangent * w.view(-1, 1)).sum(0)  # weighted tangent mean
    length = torch.norm(step) + eps
    out = mean * torch.cos(length) + step * (torch.sin(length) / length)  # exp map
    out = (out * (norms.squeeze(-1) * w).sum()).view(x.shape[1:])
    return out + base if base is not None else out
