"""NaN and Inf in the weights: kinship of such models is undefined, and the user is told
which tensors of which models hold them (not a bare `nan`).

The streaming pass notices a bad tensor for free (its statistics come out non-finite); only
those tensors are then re-read, model by model, to name the culprits.
"""
from __future__ import annotations

from typing import Iterable

from kinmerge.errors import KinmergeError
from kinmerge.io.reader import ModelReader
from kinmerge.kinship.plan import TensorJob
from kinmerge.core.nonfinite import all_finite

CHUNK = 2**22
MAX_LISTED = 5


def culprits(readers: list[ModelReader], jobs: Iterable[TensorJob]) -> list[tuple[str, str]]:
    """(model reference, tensor name) for every input tensor of `jobs` holding NaN/Inf."""
    found = []
    for job in jobs:
        for r, name in zip(readers, job.sources):
            if not all(all_finite(r.read_flat(name, lo, min(lo + CHUNK, job.numel)))
                       for lo in range(0, job.numel, CHUNK)):
                found.append((r.ref, name))
    return found


def refuse(found: list[tuple[str, str]], base: str) -> KinmergeError:
    """One error listing, per model, the tensors holding NaN/Inf."""
    by_model: dict[str, list[str]] = {base: []} if any(m == base for m, _ in found) else {}
    for model, name in found:
        by_model.setdefault(model, []).append(name)
    lines = []
    for model, names in by_model.items():
        more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
        role = "base " if model == base else "model "
        lines.append(f"  {role}{model}: {', '.join(names[:MAX_LISTED])}{more}")
    return KinmergeError("kinship is undefined: NaN/Inf values in the weights of\n"
                         + "\n".join(lines), where=", ".join(by_model),
                         fix="repair or re-download those models (a NaN weight also makes "
                             "any merge of them NaN)")
