"""NaN and Inf in merge results: found per output tensor, traced to the inputs holding them.

A model with NaN weights merges into a model with NaN weights, and fp16 arithmetic can
overflow to Inf; either way the file looks fine until someone runs it. The executor checks
every output tensor (a chunked scan, bounded memory); only when one is bad are its inputs
scanned to say which models hold NaN/Inf there. By default the merge then fails;
`allow_nonfinite=True` (`--allow-nonfinite`) writes it anyway and logs a warning naming them.

Two quieter failures are named too, in one warning line per merge each:
- an input holding NaN/Inf in a tensor whose merged result is finite (the method dropped
  those entries, as TIES may): the input is still broken, and the next recipe may not drop them;
- a finite result whose norm is more than NORM_RATIO times the largest input norm of that
  tensor (weights or scales that explode it); `allow_norm_growth=True` (`--allow-norm-growth`)
  silences that one.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)
CHUNK = 2**24  # elements per NaN/Inf count: 16 MB of booleans at most, whatever the tensor
MAX_LISTED = 10
NORM_RATIO = 10.0  # a merged tensor's norm above this many times its largest input's: absurd


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


def norm(t: torch.Tensor) -> tuple[float, bool]:
    """(L2 norm, holds no NaN/Inf) of `t` in one pass; the norm is NaN or inf when it does not.

    A NaN propagates into the sum of squares and an Inf makes it inf, so a finite norm proves
    every value finite; only an inf norm needs a second look (finite values can overflow it:
    then it is taken again in float64).
    """
    if not t.is_floating_point() or t.numel() == 0:
        return 0.0, True
    n = float(torch.linalg.vector_norm(t))
    if math.isfinite(n):
        return n, True
    if not all_finite(t):
        return n, False
    return float(torch.linalg.vector_norm(t, dtype=torch.float64)), True


@dataclass(frozen=True)
class Dropped:
    """A finite output tensor some of whose inputs hold NaN/Inf (the method dropped them)."""

    tensor: str
    culprits: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.tensor} (in {', '.join(self.culprits)})"


@dataclass(frozen=True)
class Absurd:
    """A finite output tensor whose norm is far above every input's."""

    tensor: str
    out_norm: float
    in_norm: float  # the largest input norm

    @property
    def ratio(self) -> float:
        return self.out_norm / self.in_norm if self.in_norm > 0 else math.inf

    def describe(self) -> str:
        return f"{self.tensor} ({self.out_norm:.4g} vs {self.in_norm:.4g}, {self.ratio:.3g}x)"


def absurd(name: str, out_norm: float, in_norms: list[float]) -> Absurd | None:
    """The finding when `out_norm` exceeds NORM_RATIO times the largest finite input norm."""
    finite = [n for n in in_norms if math.isfinite(n)]
    if not finite or not math.isfinite(out_norm):
        return None
    top = max(finite)
    return Absurd(name, out_norm, top) if out_norm > NORM_RATIO * top else None


def _listed(items: list) -> str:
    lines = [x.describe() for x in items[:MAX_LISTED]]
    more = f"\n  ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return "\n  ".join(lines) + more


def warn_dropped(found: list[Dropped]) -> None:
    """One warning naming the inputs whose NaN/Inf the method dropped from the result."""
    if found:
        log.warning("input models hold NaN/Inf in %d tensor(s) whose merged result is finite "
                    "(the method dropped those entries; the inputs are still broken, and "
                    "another recipe may not drop them):\n  %s", len(found), _listed(found))


def warn_absurd(found: list[Absurd]) -> None:
    """One warning naming the tensors whose merged norm is absurdly large."""
    if found:
        log.warning("absurd output norms: %d merged tensor(s) have a norm over %gx the largest "
                    "input norm of that tensor (merged vs largest input):\n  %s\n  check the "
                    "recipe's weights and scales; allow_norm_growth=True (--allow-norm-growth) "
                    "silences this warning", len(found), NORM_RATIO, _listed(found))
