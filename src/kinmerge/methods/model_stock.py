"""Model Stock (Jang et al. 2024, "Model Stock: All we need is just a few fine-tuned models")."""
from __future__ import annotations

import itertools

import torch

from kinmerge.methods.registry import Method, register


def model_stock(tensors: list[torch.Tensor], base: torch.Tensor, *,
                generator=None, accum: torch.dtype | None = None) -> torch.Tensor:
    """Move from the base toward the fine-tunes' average by t = k·cos / (1 + (k−1)·cos).

    cos is the mean pairwise cosine between the task vectors (each tensor one vector): nearly
    orthogonal fine-tunes (cos ≈ 0) stay near the base, aligned ones (cos ≈ 1) reach their
    average. The cosines are computed in `accum` (the plan's choice; default float32).

    >>> model_stock([torch.tensor([1., 0.]), torch.tensor([0., 1.])], torch.zeros(2))
    tensor([0., 0.])
    """
    k = len(tensors)
    deltas = [(t - base).reshape(-1).to(accum or torch.float32) for t in tensors]
    cos = torch.stack([torch.nn.functional.cosine_similarity(a, b, dim=0)
                       for a, b in itertools.combinations(deltas, 2)]).mean().clamp(-1, 1)
    t = (k * cos) / (1 + (k - 1) * cos)
    average = torch.stack(tensors).sum(dim=0) / k
    return (t * average + (1 - t) * base).to(base.dtype)


register(Method(
    name="model_stock", fn=model_stock, needs_base=True, params=(), min_models=2,
    paper="Jang et al. 2024, Model Stock (arXiv:2403.19522)",
    summary="Interpolate base -> average of >= 2 fine-tunes by their task vectors' angle.",
    accumulate=torch.float32))
