"""NaN and Inf in merge results: found per output tensor, traced to the inputs holding them.

A model with NaN weights merges into a model with NaN weights, and fp16 arithmetic can
overflow to Inf; either way the file looks fine until someone runs it. The executor checks
every output tensor (a chunked scan, bounded memory); only when one is bad are its inputs
scanned to say which models hold NaN/Inf there. By default the merge then fails;
`allow_nonfinite=True` (`--allow-nonfinite`) writes it anyway and logs a warning naming them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)
CHUNK = 2**24  # elements per NaN/Inf count: 16 MB of booleans at most, whatever the tensor
MAX_LISTED = 10


class NonFiniteError(KinmergeError):
    """A merge result holds NaN or Inf and writing it was not allowed."""


@dataclass(frozen=True)
class NonFinite:
    """One output tensor with NaN/Inf: how many, and which inputs hold NaN/Inf there."""

    tensor: str
    nan: int
    inf: int
    culprits: tuple[str, ...]  # "model (3 NaN, 0 Inf)"

    def describe(self) -> str:
        src = (f"input models holding NaN/Inf in it: {', '.join(self.culprits)}"
               if self.culprits else "no input holds NaN/Inf in it (the arithmetic overflowed)")
        return f"{self.tensor}: {self.nan} NaN, {self.inf} Inf; {src}"


def all_finite(t: torch.Tensor) -> bool:
    """True when `t` holds no NaN or Inf (integer tensors always).

    min and max propagate NaN and reach +-Inf, so two scalars decide it in one pass with no
    temporary: ~15x faster than `isfinite(t).all()`, which allocates a mask and makes
    several passes, and unlike a sum it cannot overflow on finite values.
    """
    if not t.is_floating_point() or t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))


def count(t: torch.Tensor) -> tuple[int, int]:
    """(NaN count, Inf count) of `t`."""
    if not t.is_floating_point():
        return 0, 0
    flat = t.reshape(-1)
    nan = sum(int(torch.isnan(flat[i:i + CHUNK]).sum()) for i in range(0, flat.numel(), CHUNK))
    inf = sum(int(torch.isinf(flat[i:i + CHUNK]).sum()) for i in range(0, flat.numel(), CHUNK))
    return nan, inf


def inspect(name: str, out: torch.Tensor,
            inputs: list[tuple[str, torch.Tensor]]) -> NonFinite:
    """The report on output `name`, given its (model, input tensor) pairs."""
    culprits = []
    for model, t in inputs:
        if not all_finite(t):
            n, i = count(t)
            culprits.append(f"{model} ({n} NaN, {i} Inf)")
    return NonFinite(name, *count(out), tuple(dict.fromkeys(culprits)))


def refuse(found: NonFinite) -> NonFiniteError:
    fix = ("repair or drop the model(s) named above (`kinmerge kinship` names their bad "
           "tensors too)" if found.culprits else
           "compute in a wider dtype ({work} or `dtype: float32` in the recipe), or check "
           "the recipe's weights")
    return NonFiniteError(f"the merge produced NaN/Inf values in output tensor "
                          f"{found.describe()}", where=f"output tensor {found.tensor}",
                          fix=fix.format(work="work_dtype='float32'") +
                          "; to write the model anyway, pass allow_nonfinite=True",
                          cli_fix=fix.format(work="--work-dtype float32") +
                          "; to write the model anyway, pass --allow-nonfinite")


def warn(found: list[NonFinite]) -> None:
    """The warning of an allowed non-finite merge, one line per tensor (first few)."""
    if not found:
        return
    lines = [f.describe() for f in found[:MAX_LISTED]]
    more = f"\n  ... and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
    log.warning("%d output tensors hold NaN/Inf (written anyway: allow_nonfinite):\n  %s%s",
                len(found), "\n  ".join(lines), more)
