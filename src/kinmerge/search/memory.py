"""A search worker's memory, planned before the run starts (from the models' headers): a
configuration that cannot fit is refused with its numbers, instead of dying mid-run.

Per worker, on the run's device:
  runtime  Python, torch and transformers in the worker process (host memory; not on a GPU)
  cache    evolution's worker cache budget (`worker_cache`), at most the sources' own size
  model    one candidate's (or breeding child's) tensors; the module built for scoring
           shares them
  merge    the scratch of the largest tensor's merge: every input in the working dtype,
           the stacked task vectors and the output (a breeding child has two parents and
           the base)
Workers that share this machine (a local pool, or a Ray cluster started here) share its
memory; on a Ray cluster given by address the plan is per worker and logged, since the
nodes' memory is not visible from here. What the fitness allocates while scoring
(activations, its own data) is the fitness's and is not counted.

The plan counts what a worker holds. What the process keeps of memory already freed is the
allocator's: every job releases its candidate and trims malloc's heap (`trim_heap`), but
while a candidate runs glibc keeps its freed tensors and scratch in the heap (bench_candidates,
a cached 0.1B DARE-TIES worker: plan 1322 MiB, peak RSS 1320 MiB; with
MALLOC_MMAP_THRESHOLD_=131072 in the environment 1144 MiB, at about twice the merge time).

>>> plan = memory_plan(cfg, workers=2); plan.check(); print(plan)      # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass

import torch

from kinmerge.errors import KinmergeError

# RSS of a worker that has imported torch and transformers, merged, built and run a tiny
# model (measured here: 0.42 GB, torch 2.13 CPU, transformers 5); a round figure above it
WORKER_RUNTIME = 512 * 2**20
GB = 1e9
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemoryPlan:
    device: str
    workers: int  # workers whose memory comes from the same device
    runtime: int
    cache: int
    model: int
    merge: int
    sources: int  # every source model's tensors as stored
    available: int | None  # free on the device now (None: not visible from here)

    @property
    def per_worker(self) -> int:
        return self.runtime + self.cache + self.model + self.merge

    @property
    def total(self) -> int:
        return self.workers * self.per_worker

    def __str__(self) -> str:
        parts = (f"{self.runtime / GB:.2f} runtime + {self.cache / GB:.2f} worker cache + "
                 f"{self.model / GB:.2f} model + {self.merge / GB:.2f} merge scratch")
        avail = (f"{self.available / GB:.2f} GB available" if self.available is not None
                 else "its free memory not visible from here")
        return (f"memory plan on {self.device}: {self.per_worker / GB:.2f} GB per worker "
                f"({parts}) x {self.workers} worker{'s' if self.workers != 1 else ''} = "
                f"{self.total / GB:.2f} GB; {avail} (sources {self.sources / GB:.2f} GB)")

    def check(self) -> None:
        if self.available is None or self.total <= self.available:
            return
        if self.cache:  # an evolution with a worker cache
            where = "evolve.yml (worker_cache, device) and --workers"
            fix = (f"lower worker_cache (the sources are {self.sources / GB:.2f} GB; a "
                   "smaller cache keeps part of them and reads the rest for each candidate, "
                   "0 turns it off), run fewer --workers, or use a device with more memory")
        else:
            where = "the config's device and --workers"
            fix = "run fewer --workers, or use a device with more memory"
        raise KinmergeError(f"this run cannot fit: {self}", where=where, fix=fix)


def memory_plan(cfg, *, workers: int = 1, here: bool = True) -> MemoryPlan:
    """The plan of evolve config `cfg`, with `workers` workers sharing one device's memory;
    `here`: that device is on this machine (False for a Ray cluster given by address)."""
    refs = list(dict.fromkeys([*cfg.models, *([cfg.base_model] if cfg.base_model else []),
                               *([cfg.dfs_partner] if cfg.dfs_partner else [])]))
    return _plan(refs, cfg.template, str(cfg.device), workers, here, cfg.worker_cache,
                 inputs=len(refs))


def breed_memory_plan(cfg, *, workers: int = 1, here: bool = True) -> MemoryPlan:
    """The plan of breed config `cfg`: each worker merges a child of two parents over the
    base (`operator`'s dtype) and scores it; no worker cache."""
    return _plan([cfg.base_model, *cfg.pool], cfg.operator, str(cfg.device), workers, here,
                 0, inputs=3)


def check_run_memory(plan_of, cfg, workers: int, backend: str,
                     ray_address: str | None) -> MemoryPlan:
    """Plan with `plan_of(cfg, workers=, here=)` the memory of a run's workers as they will
    share devices, log it, and refuse it when it cannot fit. A Ray task holds a GPU of its
    own; a cluster given by address is planned per worker."""
    ray, gpu = backend == "ray", str(cfg.device).startswith("cuda")
    sharing = 1 if (ray and (gpu or ray_address)) else max(workers, 1)
    plan = plan_of(cfg, workers=sharing, here=not (ray and ray_address))
    log.info("%s", plan)
    plan.check()
    return plan


def _plan(refs: list[str], template: dict, device: str, workers: int, here: bool,
          cache: int, *, inputs: int) -> MemoryPlan:
    """`refs`: every source (the first gives the shapes); `inputs`: the tensors one merge
    reads for an output tensor."""
    from kinmerge.core.dtypes import DTYPES, dtype_of
    from kinmerge.io.lora import open_reader

    sources, ref_sizes = 0, []
    readers = [open_reader(r) for r in refs]
    try:
        for r in readers:
            sizes = [(math.prod(r.shape(n)), r.dtype(n)) for n in r.names()]
            sources += sum(n * d.itemsize for n, d in sizes)
            ref_sizes.append(sizes)
    finally:
        for r in readers:
            r.close()
    t = template
    out_name = str(t.get("out_dtype") or t.get("dtype") or "")
    work_name = str(t.get("dtype") or "")
    out = dtype_of(out_name) if out_name in DTYPES else None
    work = dtype_of(work_name) if work_name in DTYPES else None
    sizes = ref_sizes[0]
    model = sum(n * (out or d).itemsize for n, d in sizes if d.is_floating_point) + \
        sum(n * d.itemsize for n, d in sizes if not d.is_floating_point)
    biggest = max(sizes, key=lambda x: x[0] * x[1].itemsize)
    # every input cast to the working dtype, one task vector each, the output
    merge = biggest[0] * (work or biggest[1]).itemsize * (2 * inputs + 1)
    device = _merge_device(t, device)
    gpu = device.startswith("cuda")
    return MemoryPlan(device, workers, 0 if gpu else WORKER_RUNTIME,
                      min(cache, sources), model, merge, sources,
                      _available(device) if here else None)


def _merge_device(template: dict, device: str) -> str:
    """The device whose memory holds a worker's cache and merge: `device`, except for a
    method that computes on the CPU under cuda (`core.execute.compute_device`), whose cache
    and scratch, and the merged model before it moves to the GPU, live in host memory; the
    plan then counts the host ("cpu, for slerp")."""
    name = template.get("merge_method")
    if not device.startswith("cuda") or not isinstance(name, str):
        return device
    from kinmerge.core.execute import compute_device
    from kinmerge.methods.registry import get_method

    try:
        method = get_method(name)
    except KinmergeError:  # the config's own check names an unknown method
        return device
    return device if compute_device(method, device).type == "cuda" else f"cpu, for {name}"


def _available(device: str) -> int | None:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def trim_heap() -> bool:
    """Hand the memory this process's malloc keeps of freed blocks back to the system (glibc's
    malloc_trim(0)); a search worker calls it after each job, once the candidate is released.
    glibc raises its mmap threshold after the first large free (up to 32 MiB), so a
    candidate's tensors and the merge's scratch come from the heap, where freed memory
    otherwise stays with the process: trimming between jobs keeps one candidate's leftovers
    out of the next one's peak. True when trimmed; False where there is no glibc (macOS,
    musl, Windows)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # no glibc; TypeError: Windows' CDLL(None)
        return False
    trim(0)
    return True
