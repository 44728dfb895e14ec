"""How many threads torch uses: a policy kinmerge sets itself, so the default is the fast path.

torch's default is one OpenMP thread per core. On a merge that is the slow path: measured on
a 2-core machine (0.05B bf16 Llama, 3 models, a loaded box), `linear` took 5.9 s with one
thread and 10.3 s with two, `ties` 10.2 s and 62 s. Merges and kinship stream memory-bound
elementwise work in many small kernels (`linear` works in 64K-element blocks); each kernel is
an OpenMP parallel region whose threads spin-wait at its end (libgomp's default), and a
thread that shares its core with the read-ahead thread or another process makes the others
spin until the scheduler runs it again. One thread loses nothing on such work and cannot be
stalled that way. With `OMP_WAIT_POLICY=PASSIVE` the collapse goes (`ties` 9.3 s on two
threads), but that setting is read only when torch loads, so it cannot be relied on.

Merge arithmetic always runs on one thread (`arithmetic()`, around every method call), so a
merge's bytes are a function of the recipe and the inputs alone. torch's reductions (sums,
dot products, means, variances) split their input across the OpenMP threads and add the
partial results, so their rounding follows the thread count: a float32 DARE or model_stock
merge of a 0.4M-element tensor gives other bytes with 2 threads than with 1. One thread is
also how merges are compared with mergekit (run with one thread, its torch reductions round
the same way). The thread count chosen here still applies around the arithmetic (reading,
LoRA products, dtype casts: work whose result does not depend on it) and to kinship,
evaluation and scoring.

The policy, in order (the first that applies wins):
  1. `threads=N` (`--threads N`), 2. `KINMERGE_THREADS=N`,
  3. the user's own `OMP_NUM_THREADS` / `MKL_NUM_THREADS` (respected: torch already read it),
  4. by the work: merges (`elementwise`: linear, slerp, ...; `select`: ties, dare, della,
     breadcrumbs) and kinship: 1; `matmul` (eval, evolve, breed scoring): the free CPUs;
     `train` (the zoo's tiny models, `build_zoo`): 1, measured on a busy 2-core machine at
     110 s for 100 base steps of the kin zoo against 800 s on torch's default of two
     threads, and fixed rather than load-dependent so the weights a build gives do not
     depend on how busy the machine was. Free CPUs = the CPUs this process may use
     (affinity, cgroup quota) less the other processes running right now (/proc/loadavg),
     at least 1.

The CLI applies the choice for the whole process (`apply`); the Python API wraps each public
call in `using(...)`, which restores torch's thread count when the call returns.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, TypeVar

from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)
Work = Literal["elementwise", "select", "matmul", "train"]
F = TypeVar("F", bound=Callable)
ENV = "KINMERGE_THREADS"
USER_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
HELP = ("Torch threads. Default: kinmerge's policy: 1 for merges and kinship (memory-bound), "
        "the free CPUs for evaluation. KINMERGE_THREADS, or an OMP_NUM_THREADS you set, "
        "overrides it. A merge's arithmetic runs on one thread whatever this says, so its "
        "bytes do not depend on it.")


@dataclass(frozen=True)
class ThreadChoice:
    """How many threads, and why (what `kinmerge -v` logs)."""

    threads: int
    source: str  # "--threads", "KINMERGE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "policy"
    cpus: int  # CPUs this process may use


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(n, math.ceil(quota))) if quota else max(1, n)


def cgroup_quota(root: Path = Path("/sys/fs/cgroup"),
                 self_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota in CPUs (cgroup v2 `cpu.max` of this process's group or the root, else
    v1 `cfs_quota_us`), None if unlimited."""
    try:
        for v2 in (root / _v2_group(self_cgroup) / "cpu.max", root / "cpu.max"):
            if v2.is_file():
                quota, period = v2.read_text().split()[:2]
                return None if quota == "max" else int(quota) / int(period)
        for d in (root / "cpu,cpuacct", root / "cpu"):
            q = d / "cpu.cfs_quota_us"
            if q.is_file():
                quota = int(q.read_text())
                period = int((d / "cpu.cfs_period_us").read_text())
                return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def _v2_group(self_cgroup: Path) -> str:
    """This process's cgroup v2 path, relative ("" where unknown)."""
    try:
        for line in self_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].strip().lstrip("/")
    except OSError:
        pass
    return ""


def others_running(loadavg: Path = Path("/proc/loadavg")) -> int:
    """Runnable tasks on the machine now, this one excluded (0 where unknown)."""
    try:
        running = int(loadavg.read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def choose(work: Work, threads: int | None = None, *,
           cpus: int | None = None, busy: int | None = None,
           env: dict[str, str] | None = None) -> ThreadChoice:
    """The thread count for `work` (see the module docstring for the order of the rules)."""
    env = os.environ if env is None else env
    cpus = usable_cpus() if cpus is None else cpus
    if threads is not None:
        return ThreadChoice(_positive(threads, "--threads"), "--threads", cpus)
    for name in (ENV, *USER_ENV):
        if env.get(name, "").strip():
            return ThreadChoice(_positive(env[name], name), name, cpus)
    if work in ("elementwise", "select", "train"):
        # merge arithmetic runs on one thread (arithmetic()); training is fixed at one so a
        # zoo build's weights do not depend on the load
        return ThreadChoice(1, "policy", cpus)
    return ThreadChoice(max(1, cpus - (others_running() if busy is None else busy)), "policy",
                        cpus)


def _positive(value: object, where: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise KinmergeError(f"not a thread count: {value!r}", where=where,
                            fix="give a whole number of threads, 1 or more")
    return n


def apply(work: Work, threads: int | None = None) -> ThreadChoice:
    """Set torch's thread count for the rest of the process (the CLI's way)."""
    import torch

    c = choose(work, threads)
    torch.set_num_threads(c.threads)
    log.debug("torch threads: %d (%s; %d usable CPUs)", c.threads, c.source, c.cpus)
    return c


@contextlib.contextmanager
def using(work: Work, threads: int | None = None) -> Iterator[ThreadChoice]:
    """Run the block with the policy's thread count; torch's count is restored on exit.

    What a public API call does, so no process-wide torch setting outlives the call.
    """
    import torch

    before = torch.get_num_threads()
    c = choose(work, threads)
    torch.set_num_threads(c.threads)
    log.debug("torch threads: %d (%s; %d usable CPUs)", c.threads, c.source, c.cpus)
    try:
        yield c
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def arithmetic() -> Iterator[None]:
    """Run the block on one torch thread; torch's count is restored on exit.

    The executor runs every merge method inside it: torch's reductions round according to
    how the OpenMP threads split them, and a tail of a split elementwise kernel can take a
    scalar path (exp, log) that rounds unlike the vector one, so only a fixed thread count
    makes the bytes a function of the recipe and inputs alone. One is the count mergekit's
    results are compared at. A no-op where torch already runs one thread (the default policy
    for merges), so the common path costs nothing.
    """
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_threads(work: Work) -> Callable[[F], F]:
    """Give a public function a `threads=None` keyword and run it under `using(work, threads)`."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args, threads: int | None = None, **kwargs):
            with using(work, threads):
                return fn(*args, **kwargs)

        sig = inspect.signature(fn)
        extra = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None,
                                  annotation="int | None")
        call.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])
        return call  # type: ignore[return-value]
    return wrap
