"""Task arithmetic (Ilharco et al. 2023, "Editing Models with Task Arithmetic")."""
from __future__ import annotations

import torch

from kinmerge.errors import short_repr
from kinmerge.methods.registry import INT8_MASK, Method, Param, register
from kinmerge.methods.sparsify import combine


def task_vectors(tensors: list[torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """(n_models, *shape): tau_k = theta_k - theta_0."""
    out = torch.empty((len(tensors), *base.shape), dtype=base.dtype, device=base.device)
    for k, t in enumerate(tensors):
        torch.sub(t, base, out=out[k])  # straight into place: no per-model temporaries
    return out


def task_arithmetic(tensors: list[torch.Tensor], base: torch.Tensor, *, weight: list[float],
                    normalize: bool = False, lambda_: float = 1.0,
                    generator=None) -> torch.Tensor:
    """theta_0 + lambda * sum_k w_k tau_k (/ sum_k w_k when normalize). w_k < 0 negates a task.

    >>> task_arithmetic([torch.tensor([2., 0.])], torch.tensor([1., 1.]), weight=[-1.0])
    tensor([0., 2.])
    """
    return combine(task_vectors(tensors, base), weight, base, elect=False,
                   normalize=normalize, lambda_=lambda_)


def zero_weight_sum(params: dict) -> str | None:
    """A warning: with normalize, weights summing to 0 leave the sum undivided (mergekit
    divides by 1 then too), which is rarely what normalize was written for."""
    if params.get("normalize") and abs(sum(params["weight"])) < 1e-8:
        weights = short_repr(params["weight"])
        return (f"the weights {weights} sum to 0, so normalize cannot divide by "
                "their sum: the weighted task vectors are added undivided (as in mergekit)")
    return None


register(Method(
    name="task_arithmetic", fn=task_arithmetic, needs_base=True, caution=zero_weight_sum,
    params=(Param("weight", "model"), Param("normalize", "global", False, bool),
            Param("lambda", "global", 1.0), INT8_MASK),
    paper="Ilharco et al. 2023, Editing Models with Task Arithmetic (arXiv:2212.04089)",
    summary="Add weighted task vectors to the base; negative weights subtract a task."))
