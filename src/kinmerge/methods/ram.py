"""RAM and RAM+ (tensor-local): Reinforced Agent Merging (arXiv:2601.13572). Entries only one
model changed are kept whole; entries several changed are averaged over those models."""
from __future__ import annotations

import torch

from kinmerge.methods.registry import Method, Param, Range, register
from kinmerge.methods.task_vector import task_vectors

# |tau| > epsilon marks an entry as changed: above 1 almost no fine-tune changes anything
EPSILON = Range(0.0, 1.0)
# RAM+ scales a unique change by 1 + r * min(rho, alpha): at most 1 + 10 * 10 = 101x
AMPLIFY = Range(0.0, 10.0)


def ram(tensors: list[torch.Tensor], base: torch.Tensor, *, epsilon: float = 1e-5,
        generator=None) -> torch.Tensor:
    """theta_0 + per entry, the mean of the task-vector entries with |tau| > epsilon.

    An entry changed by one model takes that model's change unscaled (a plain mean would
    dilute it by the number of models); entries changed by none stay the base's.

    >>> ram([torch.tensor([2., 4., 0.]), torch.tensor([0., 2., 0.])], torch.zeros(3))
    tensor([2., 3., 0.])
    """
    tv, changed, counts = _changes(tensors, base, epsilon)
    unique, shared = counts == 1, counts > 1
    tv = tv * changed
    merged = ((tv * unique) + (tv * shared / counts.clamp(min=1))).sum(dim=0, keepdim=True)
    return base + merged.reshape_as(base)


def ramplus_tl(tensors: list[torch.Tensor], base: torch.Tensor, *, accum: torch.dtype,
               r: float = 0.1, alpha: float = 0.2, epsilon: float = 1e-5,
               generator=None) -> torch.Tensor:
    """RAM with each model's unique changes scaled up by 1 + r * clamp(rho_k, 0, alpha).

    rho_k = (entries model k shares with others) / (entries only model k changed), counted
    in this tensor ("tensor-local"): a model whose changes mostly overlap others' gets its
    few unique ones amplified. The scale is in `accum` (the plan's choice from the registry:
    float32, float64 for float64 work), so bfloat16 inputs are merged in float32 before the
    result is rounded, as in mergekit.

    >>> ramplus_tl([torch.tensor([2., 4., 0.]), torch.tensor([0., 2., 0.])], torch.zeros(3),
    ...            accum=torch.float32)
    tensor([2.0400, 3.0000, 0.0000])
    """
    tv, changed, counts = _changes(tensors, base, epsilon)
    unique, shared = counts == 1, counts > 1
    rho = (changed & shared).sum(dim=1) / (changed & unique).sum(dim=1).clamp(min=epsilon)
    scale = (1 + r * rho.clamp(min=0, max=alpha)).to(accum)  # (n_models,)
    tv = tv * changed
    merged = ((tv * unique * scale.unsqueeze(-1)) + (tv * shared / counts.clamp(min=1)))
    return base + merged.sum(dim=0, keepdim=True).reshape_as(base)


def _changes(tensors: list[torch.Tensor], base: torch.Tensor, epsilon: float):
    """Task vectors (n_models, numel), which entries each model changed (|tau| > epsilon),
    and how many models changed each entry (1, numel)."""
    tv = task_vectors(tensors, base).view(len(tensors), -1)
    changed = tv.abs() > epsilon
    return tv, changed, changed.sum(dim=0, keepdim=True)


register(Method(
    name="ram", fn=ram, needs_base=True, params=(Param("epsilon", "global", 1e-5, range=EPSILON),),
    paper="Reinforced Agent Merging (arXiv:2601.13572)",
    summary="Unique changes kept whole, shared changes averaged over the models that made "
            "them."))
register(Method(
    name="ramplus_tl", fn=ramplus_tl, needs_base=True,
    params=(Param("r", "global", 0.1, range=AMPLIFY),
            Param("alpha", "global", 0.2, range=AMPLIFY),
            Param("epsilon", "global", 1e-5, range=EPSILON)),
    paper="Reinforced Agent Merging, RAM+ (arXiv:2601.13572)",
    summary="RAM with unique changes amplified by how much each model overlaps the others "
            "(per tensor).",
    accumulate=torch.float32))
