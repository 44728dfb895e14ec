"""The memory a merge holds: per job, the whole plan's expected peak, and when reading ahead
is free (what the executor follows and `kinmerge plan` prints).

The executor holds one job at a time: its inputs as read, their casts to the working dtype
when that differs, the method's scratch and the output; plus, while it computes, the next
job's inputs when they are read ahead (and, for DARE, its random masks, drawn ahead). Reading ahead is allowed only where it keeps the sum
under the largest job's own footprint, so it never raises the peak (measured at 0.27B: reading
the embeddings while the lm_head merged took `linear` from 0.46 to 0.73 GB above the runtime).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinmerge.io.dtype import Dtype
from kinmerge.io.reader import ModelReader
from kinmerge.core.plan import Plan, TensorJob

if TYPE_CHECKING:
    import torch

RUNTIME_BYTES = 300 * 2**20  # RSS of `python -c "import kinmerge.cli"` (measured 0.29 GB)
PREFETCH_BYTES = 256 * 2**20  # and never read ahead more than this


@dataclass(frozen=True)
class PeakEstimate:
    """Expected peak RSS in bytes, and the output tensor at which it is reached."""

    bytes: int
    tensor: str
    runtime: int = RUNTIME_BYTES

    def __str__(self) -> str:
        return (f"expected peak memory: up to ~{self.bytes / 1e9:.2f} GB (at {self.tensor}; "
                f"{self.runtime / 1e9:.2f} GB of it is Python and torch)")


def predraws(plan: Plan, job: TensorJob) -> list[float]:
    """The densities of the masks `job`'s method will draw, when they can be drawn ahead: a
    method that declares them (`Method.draws`), on a tensor whose shape is its output's (not
    one whose rows a tokenizer lays out anew)."""
    m = plan.method
    if not m.stochastic or m.draws is None or job.vocab is not None:
        return []
    return m.draws(job.params)


def ahead_bytes(plan: Plan, job: TensorJob, readers: dict[str, ModelReader]) -> int:
    """What reading `job` ahead holds: its inputs as read and its predrawn masks (bool)."""
    return input_bytes(job, readers) + len(predraws(plan, job)) * math.prod(job.shape)


def read_ahead(plan: Plan, readers: dict[str, ModelReader],
               work: Dtype | torch.dtype | None = None) -> list[bool]:
    """Per job: may the next job's inputs be read (and its masks drawn) while this one
    computes?"""
    held = [job_bytes(plan, j, readers, work) for j in plan.jobs]
    ins = [ahead_bytes(plan, j, readers) for j in plan.jobs]
    cap = max(held, default=0)
    return [i + 1 < len(held) and ins[i + 1] <= PREFETCH_BYTES and held[i] + ins[i + 1] <= cap
            for i in range(len(held))]


def expected_peak(plan: Plan, readers: dict[str, ModelReader],
                  work: Dtype | torch.dtype | None = None) -> PeakEstimate:
    """The most memory the plan's jobs hold at once, plus the runtime's own."""
    ahead = read_ahead(plan, readers, work)
    worst, at = 0, plan.jobs[0].name if plan.jobs else "-"
    for i, job in enumerate(plan.jobs):
        held = job_bytes(plan, job, readers, work)
        held += ahead_bytes(plan, plan.jobs[i + 1], readers) if ahead[i] else 0
        if held > worst:
            worst, at = held, job.name
    return PeakEstimate(RUNTIME_BYTES + worst, at)


def job_bytes(plan: Plan, job: TensorJob, readers: dict[str, ModelReader],
              work: Dtype | torch.dtype | None = None) -> int:
    """Inputs as read + their casts + the method's scratch + the output of one job."""
    refs = list(job.sources) + ([job.base] if job.base else [])
    stored = readers[refs[0][0]].dtype(refs[0][1])
    work = work or plan.compute_dtype or stored
    numel = math.prod(job.shape)
    held = input_bytes(job, readers)
    if work != stored:
        held += len(refs) * numel * work.itemsize
    m = plan.method
    # task-vector methods stack one delta per model; the others (linear, slerp, passthrough)
    # work in blocks and hold about one wider copy of the output. Top-k and random masks add
    # a 16-bit key and a bool mask per element (measured at 0.27B: ties 1.01 GB, linear 0.54)
    copies = len(job.sources) + 1 if m.needs_base and m.n_models is None else 2
    masks = 4 * numel if m.work == "select" else 0
    return held + copies * numel * work.itemsize + masks + numel * job.out_dtype.itemsize


def input_bytes(job: TensorJob, readers: dict[str, ModelReader]) -> int:
    """Bytes of a job's inputs as stored (what reading them allocates)."""
    refs = list(job.sources) + ([job.base] if job.base else [])
    return sum(math.prod(readers[m].shape(n)) * readers[m].dtype(n).itemsize for m, n in refs)
