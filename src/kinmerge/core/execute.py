"""The streaming loop: for each job, read its inputs, run the method, hand the result on.

One job's tensors are in memory at a time, plus the next job's when they are small, which a
reader thread loads while the current one computes (file reads and torch kernels both release
the GIL).
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from kinmerge.core import nonfinite
from kinmerge.io.reader import ModelReader
from kinmerge.io.writer import Sink
from kinmerge.core.peak import read_ahead
from kinmerge.core.plan import Plan, TensorJob
from kinmerge.seeds import tensor_seed
from kinmerge.threads import arithmetic
from kinmerge.tokenizer.rows import apply_rows

log = logging.getLogger(__name__)
Inputs = tuple[list[torch.Tensor], torch.Tensor | None]


def execute(plan: Plan, readers: dict[str, ModelReader], sink: Sink, *, seed: int = 0,
            device: str | torch.device = "cpu",
            on_tensor: Callable[[TensorJob], None] | None = None,
            allow_nonfinite: bool = False) -> None:
    """Compute every tensor of `plan` in order and `sink.add` it.

    Each job's working, accumulation and output dtypes are the plan's. The stochastic
    methods draw from a generator seeded by (seed, output tensor name), and every method runs
    on one torch thread (`threads.arithmetic`), so results do not depend on the job order,
    the read-ahead or torch's thread count.
    An output holding NaN/Inf raises NonFiniteError at once, unless `allow_nonfinite`
    (then every such tensor is named in one warning at the end).
    """
    device = torch.device(device)
    jobs = plan.jobs
    ahead_ok = read_ahead(plan, readers)  # the plan's working dtypes
    bad: list[nonfinite.NonFinite] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinmerge-read") as pool:
        ahead: Future | None = None
        for i, job in enumerate(jobs):
            tensors, base = ahead.result() if ahead else _load(job, readers)
            nxt = jobs[i + 1] if i + 1 < len(jobs) else None
            # read ahead only where it does not raise the peak memory (kinmerge.core.peak)
            ahead = pool.submit(_load, nxt, readers) if ahead_ok[i] else None
            out = run_job(plan, job, tensors, base, seed=seed, device=device)
            if not nonfinite.all_finite(out):
                bad.append(_nonfinite(job, out, tensors, base))
                if not allow_nonfinite:
                    raise nonfinite.refuse(bad[-1])
            sink.add(job.name, out)
            del tensors, base, out
            if on_tensor:
                on_tensor(job)
    nonfinite.warn(bad)


def _nonfinite(job: TensorJob, out: torch.Tensor, tensors: list[torch.Tensor],
               base: torch.Tensor | None) -> nonfinite.NonFinite:
    inputs = [(m, t) for (m, _), t in zip(job.sources, tensors)]
    if base is not None:
        inputs.insert(0, (job.base[0], base))
    return nonfinite.inspect(job.name, out, inputs)


def _load(job: TensorJob, readers: dict[str, ModelReader]) -> Inputs:
    tensors = [readers[m].get(n) for m, n in job.sources]
    base = readers[job.base[0]].get(job.base[1]) if job.base else None
    return tensors, base


def run_job(plan: Plan, job: TensorJob, tensors: list[torch.Tensor],
            base: torch.Tensor | None, *, seed: int, device: torch.device) -> torch.Tensor:
    """One output tensor: cast and place inputs, call the method, cast to the output dtype."""
    ref = base if base is not None else tensors[0]
    if not ref.is_floating_point():  # integer/bool buffers are copied from the reference:
        return ref.to(dtype=job.out_dtype)  # no weight arithmetic means anything on them
    dt = job.work_dtype or ref.dtype
    tensors = [t.to(device=device, dtype=dt) for t in tensors]
    if base is not None:
        base = base.to(device=device, dtype=dt)
    if job.vocab is not None:  # rows laid out in the output vocabulary, in the working dtype
        laid = apply_rows(job.vocab, tensors + ([base] if base is not None else []))
        tensors, base = laid[:len(tensors)], (laid[-1] if base is not None else None)
    gen = None
    if plan.method.stochastic:
        gen = torch.Generator().manual_seed(tensor_seed(seed, job.name))
    # the arithmetic runs on one thread whatever torch's count: reductions round by how the
    # threads split them, so any other count would make the bytes follow it (threads.arithmetic)
    with torch.no_grad(), arithmetic():
        accum = {"accum": job.accum_dtype} if job.accum_dtype is not None else {}
        out = plan.method.fn(tensors, base, generator=gen, **job.params, **accum)
    # a method may accumulate wider than `dt` (slerp, linear); the result is rounded to the
    # working dtype before the output cast, as mergekit does, so `dtype: bfloat16` with
    # `out_dtype: float32` stores bfloat16 values widened, not the float32 intermediate
    return out.to(dtype=dt).to(dtype=job.out_dtype).cpu()
