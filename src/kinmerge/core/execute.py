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
from kinmerge.core.peak import predraws, read_ahead
from kinmerge.core.plan import Plan, TensorJob
from kinmerge.methods.sparsify import Predrawn
from kinmerge.seeds import tensor_seed
from kinmerge.threads import arithmetic
from kinmerge.tokenizer.rows import apply_rows

log = logging.getLogger(__name__)
# a job's inputs as read, and (norm, finite) of each, the base first: the reader thread takes
# the norms while the previous job computes, so the checks cost little wall time
Inputs = tuple[list[torch.Tensor], torch.Tensor | None, list[tuple[float, bool]]]


def execute(plan: Plan, readers: dict[str, ModelReader], sink: Sink, *, seed: int = 0,
            device: str | torch.device = "cpu",
            on_tensor: Callable[[TensorJob], None] | None = None,
            allow_nonfinite: bool = False, allow_norm_growth: bool = False) -> None:
    """Compute every tensor of `plan` in order and `sink.add` it.

    Each job's working, accumulation and output dtypes are the plan's. The stochastic
    methods draw from a generator seeded by (seed, output tensor name), and every method runs
    on one torch thread (`threads.arithmetic`), so results do not depend on the job order,
    the read-ahead or torch's thread count.
    An output holding NaN/Inf raises NonFiniteError at once, unless `allow_nonfinite`
    (then every such tensor is named in one warning at the end). Inputs holding NaN/Inf
    where the result is finite, and results whose norm is over nonfinite.NORM_RATIO times
    their largest input's, are named in one warning each (the latter unless
    `allow_norm_growth`).
    """
    device = compute_device(plan.method, device)
    jobs = plan.jobs
    ahead_ok = read_ahead(plan, readers)  # the plan's working dtypes
    bad: list[nonfinite.NonFinite] = []
    dropped: list[nonfinite.Dropped] = []
    absurd: list[nonfinite.Absurd] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinmerge-read") as pool:
        ahead: Future | None = None
        for i, job in enumerate(jobs):
            tensors, base, norms, drawn = ahead.result() if ahead else (
                *_load(job, readers), None)
            nxt = jobs[i + 1] if i + 1 < len(jobs) else None
            # read ahead only where it does not raise the peak memory (kinmerge.core.peak),
            # and where there is work to hide: a read (a cached input costs no thread
            # handoff) or random masks to draw
            masks = predraws(plan, nxt) if ahead_ok[i] else []
            ahead = pool.submit(_load_ahead, nxt, readers, seed, masks) \
                if ahead_ok[i] and (not _held(nxt, readers) or masks) else None
            out = run_job(plan, job, tensors, base, seed=seed, device=device, predrawn=drawn)
            out_norm, out_ok = nonfinite.norm(out)
            if not out_ok:
                bad.append(_nonfinite(job, out, tensors, base))
                if not allow_nonfinite:
                    raise nonfinite.refuse(bad[-1])
            else:
                if not all(ok for _, ok in norms):  # NaN/Inf the method dropped
                    found = nonfinite.inspect(job.name, out, _inputs(job, tensors, base))
                    dropped.append(nonfinite.Dropped(job.name, found.culprits))
                elif not allow_norm_growth and (
                        a := nonfinite.absurd(job.name, out_norm, [n for n, _ in norms])):
                    absurd.append(a)
            sink.add(job.name, out)
            del tensors, base, out
            if on_tensor:
                on_tensor(job)
    nonfinite.warn(bad)
    nonfinite.warn_dropped(dropped)
    nonfinite.warn_absurd(absurd)


def compute_device(method, device: str | torch.device) -> torch.device:
    """Where `method`'s arithmetic runs when the merge asks for `device`: there, unless the
    method does not give the CPU's bytes on an accelerator (`Method.device_exact`: slerp,
    nuslerp, multislerp, karcher, model_stock, sce), which then runs on the CPU so that the
    output is the same whatever device was asked for."""
    device = torch.device(device)
    if device.type == "cpu" or method.device_exact:
        return device
    if method.name not in _SAID_CPU:  # once a process: an evolution merges many candidates
        _SAID_CPU.add(method.name)
        log.info("%s runs on the CPU although %s was asked for: its norms and angles "
                 "round differently on an accelerator, and a merge's bytes do not depend on "
                 "the device", method.name, device)
    return torch.device("cpu")


_SAID_CPU: set[str] = set()


def _inputs(job: TensorJob, tensors: list[torch.Tensor],
            base: torch.Tensor | None) -> list[tuple[str, torch.Tensor]]:
    """(model, tensor) of every input of `job`, the base first."""
    inputs = [(m, t) for (m, _), t in zip(job.sources, tensors)]
    if base is not None:
        inputs.insert(0, (job.base[0], base))
    return inputs


def _nonfinite(job: TensorJob, out: torch.Tensor, tensors: list[torch.Tensor],
               base: torch.Tensor | None) -> nonfinite.NonFinite:
    return nonfinite.inspect(job.name, out, _inputs(job, tensors, base))


def _held(job: TensorJob, readers: dict[str, ModelReader]) -> bool:
    """Every input of `job` is in memory already (a reader's `held`, kinmerge.io.cache)."""
    refs = list(job.sources) + ([job.base] if job.base else [])
    return all(getattr(readers[m], "held", lambda n: False)(n) for m, n in refs)


def _load(job: TensorJob, readers: dict[str, ModelReader]) -> Inputs:
    tensors = [readers[m].get(n) for m, n in job.sources]
    base = readers[job.base[0]].get(job.base[1]) if job.base else None
    return tensors, base, [nonfinite.norm(t) for _, t in _inputs(job, tensors, base)]


def _load_ahead(job: TensorJob, readers: dict[str, ModelReader], seed: int,
                densities: list[float]) -> tuple[list[torch.Tensor], torch.Tensor | None,
                                                 list[tuple[float, bool]], Predrawn | None]:
    """`_load`, plus the job's random masks at `densities` (`predraws`) drawn from its own
    generator, on the read-ahead thread while the current job computes."""
    drawn = Predrawn(torch.Size(job.shape), densities, _generator(seed, job)) \
        if densities else None
    return (*_load(job, readers), drawn)


def _generator(seed: int, job: TensorJob) -> torch.Generator:
    """The job's own generator: seeded by the merge's seed and the output tensor's name."""
    return torch.Generator().manual_seed(tensor_seed(seed, job.name))


def run_job(plan: Plan, job: TensorJob, tensors: list[torch.Tensor],
            base: torch.Tensor | None, *, seed: int, device: torch.device,
            predrawn: Predrawn | None = None) -> torch.Tensor:
    """One output tensor: cast and place inputs, call the method, cast to the output dtype.
    `predrawn`: the job's random masks, drawn ahead from its generator (`_load_ahead`)."""
    ref = base if base is not None else tensors[0]
    if not ref.is_floating_point():  # integer/bool buffers are copied from the reference:
        return _own(ref.to(dtype=job.out_dtype.torch), ref)  # no weight arithmetic applies
    dt = job.work_dtype.torch
    inputs = [*tensors, *([base] if base is not None else [])]
    tensors = [t.to(device=device, dtype=dt) for t in tensors]
    if base is not None:
        base = base.to(device=device, dtype=dt)
    if job.vocab is not None:  # rows laid out in the output vocabulary, in the working dtype
        laid = apply_rows(job.vocab, tensors + ([base] if base is not None else []))
        tensors, base = laid[:len(tensors)], (laid[-1] if base is not None else None)
    gen = None
    if plan.method.stochastic:
        gen = predrawn if predrawn is not None else _generator(seed, job)
    # the arithmetic runs on one thread whatever torch's count: reductions round by how the
    # threads split them, so any other count would make the bytes follow it (threads.arithmetic)
    with torch.no_grad(), arithmetic():
        accum = {"accum": job.accum_dtype.torch} if job.accum_dtype is not None else {}
        out = plan.method.fn(tensors, base, generator=gen, **job.params, **accum)
    if predrawn is not None:
        predrawn.done()
    # a method may accumulate wider than `dt` (slerp, linear); the result is rounded to the
    # working dtype before the output cast, as mergekit does, so `dtype: bfloat16` with
    # `out_dtype: float32` stores bfloat16 values widened, not the float32 intermediate
    return _own(out.to(dtype=dt).to(dtype=job.out_dtype.torch).cpu(), *inputs)


def _own(out: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """`out`, copied if it shares memory with an input: a reader may hand out tensors it
    keeps (kinmerge.io.cache), and a merged model must never alias them."""
    ptr = out.untyped_storage().data_ptr()
    return out.clone() if any(t.untyped_storage().data_ptr() == ptr for t in inputs) else out
