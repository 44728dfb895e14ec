"""Model Stock (Jang et al. 2024, "Model Stock: All we need is just a few fine-tuned models")."""
from __future__ import annotations

import torch


def model_stock(tensors: list[torch.Tensor], base: torch.Tensor, *, filter_wise: bool = False,
                generator=None) -> torch.Tensor:
    """Move from the base toward the fine-tunes' average by t = k·cos / (1 + (k−1)·cos).

    cos is the mean pairwise cosine between the task vectors: nearly orthogonal fine-tunes
    (cos ≈ 0) stay near the base, aligned ones (cos ≈ 1) reach their average. By default each
    tensor is one vector; with `filter_wise` each row (each slice along the last dimension)
    gets its own cos and t. Everything runs in the inputs' dtype, cos as dot / (‖a‖·‖b‖)
    (norms' product floored at 1e-6), as mergekit 0.1.5 computes it: in bfloat16 the angle
    and t round in bfloat16, and the output is mergekit's bit for bit. Where 1 + (k−1)·cos
    is 0 (|·| < 1e-6) there is no finite estimate and the base is kept.

    >>> model_stock([torch.tensor([1., 0.]), torch.tensor([0., 1.])], torch.zeros(2))
    tensor([0., 0.])
    """
    shape = base.shape
    if filter_wise:
        rows = (lambda x: x.unsqueeze(0)) if base.dim() == 1 else (lambda x: x)
    else:
        rows = (lambda x: x.reshape(-1))
    w0, ws = rows(base), [rows(t) for t in tensors]
    deltas = [w - w0 for w in ws]
    cosines = []
    for i, a in enumerate(deltas):
        for b in deltas[i + 1:]:
            norms = torch.norm(a, dim=-1) * torch.norm(b, dim=-1)
            cosines.append(((a * b).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(-1)  # (rows, 1), or (1,)
    k = len(ws)
    denominator = 1 + (k - 1) * cos
    singular = denominator.abs() < 1e-6
    t = torch.where(singular, torch.zeros_like(cos),
                    (k * cos) / torch.where(singular, torch.ones_like(cos), denominator))
    average = ws[0]
    for w in ws[1:]:
        average = average + w
    average = average / k
    return (t * average + (1 - t) * w0).reshape(shape)
