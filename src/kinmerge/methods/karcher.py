"""Karcher mean: the Riemannian centre of mass of the models' directions on the unit sphere,
scaled by their mean norm (Karcher 1977; for merging see arXiv:2603.04972)."""
from __future__ import annotations

import torch


def karcher(tensors: list[torch.Tensor], base=None, *, accum: torch.dtype,
            max_iter: float = 10, tol: float = 1e-5, generator=None) -> torch.Tensor:
    """Equal-weight Karcher mean of the inputs (no base: a base_model is one more input).

    Each tensor is one vector, split into norm and direction. The mean direction is found
    by Riemannian gradient steps (log map, weighted mean, exp map) from the normalized
    Euclidean mean, at most `max_iter` times or until the step is shorter than `tol`;
    inputs with norm <= tol do not pull. The result is that direction times the mean norm.
    Norms are computed in `accum` (the plan's choice from the registry: float32, float64 for
    float64 work), the rest in the working dtype.

    >>> karcher([torch.tensor([1., 0.]), torch.tensor([0., 3.])], accum=torch.float32)
    tensor([1.4142, 1.4142])
    """
    if len(tensors) == 1:
        return tensors[0]
    alphas = [1.0 / len(tensors)] * len(tensors)
    wide = accum
    norms = [torch.linalg.vector_norm(x.to(wide)) for x in tensors]  # 0-dim, wide
    units = [torch.zeros_like(x) if n.item() == 0.0 else (x / n).to(x.dtype)
             for x, n in zip(tensors, norms)]
    pulling = [i for i, n in enumerate(norms) if n.item() > tol]
    if not pulling:
        return torch.zeros_like(tensors[0])
    total = sum(alphas[i] for i in pulling)
    a = [alphas[i] / total for i in pulling]
    u = [units[i] for i in pulling]
    mean = _mean_direction(a, u, tol, wide)
    for _ in range(int(max_iter)):
        step = torch.zeros_like(mean)  # log map of every direction at `mean`, weighted
        for a_k, u_k in zip(a, u):
            cos = torch.clamp(torch.dot(mean.flatten(), u_k.flatten()), -1.0, 1.0)
            theta = torch.arccos(cos)
            if theta.item() < tol:
                continue
            step += a_k * (theta / torch.sin(theta)) * (u_k - cos * mean)
        length = torch.linalg.vector_norm(step.to(wide))
        if length.item() < tol:
            break
        mean = (torch.cos(length) * mean + torch.sin(length) * (step / length)).to(mean.dtype)
        n = torch.linalg.vector_norm(mean.to(wide))  # back onto the sphere
        if n.item() > tol:
            mean = (mean / n).to(mean.dtype)
    scale = sum(a_k * n for a_k, n in zip(alphas, norms))  # every input's norm counts
    return scale * mean


def _mean_direction(a: list[float], u: list[torch.Tensor], tol: float,
                    wide: torch.dtype) -> torch.Tensor:
    """The normalized weighted Euclidean mean of the directions (the first one if ~0)."""
    mean = torch.zeros_like(u[0])
    for a_k, u_k in zip(a, u):
        mean += a_k * u_k
    n = torch.linalg.vector_norm(mean.to(wide))
    return u[0].clone() if n.item() < tol else (mean / n).to(mean.dtype)
