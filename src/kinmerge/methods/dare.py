"""DARE's drop (Yu et al. 2024, "Language Models are Super Mario: Absorbing Abilities from
Homologous Models as a Free Lunch"): keep each task-vector entry with probability density.
The methods are the `dare_linear` and `dare_ties` rows of `kinmerge.methods.task_vector`
(with their rescale on by default, as in mergekit)."""
from __future__ import annotations

import torch

from kinmerge.methods.sparsify import bernoulli_mask, keep_only


def drop(delta: torch.Tensor, density: float, *, generator: torch.Generator, topk=None,
         inplace: bool = False) -> torch.Tensor:
    """delta with each entry kept with probability `density` (a Bernoulli mask drawn on the
    CPU from the per-tensor generator), the others set to 0."""
    keep = bernoulli_mask(delta.shape, density, generator).to(delta.device)
    return keep_only(delta if inplace else delta.clone(), keep)
