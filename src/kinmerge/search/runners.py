"""Where independent jobs run: inline, a local process pool, or a Ray cluster.

Evolution's candidates and a breeding generation's merges and evaluations go through the
same runners. `submit(fn, arg)` runs `fn(arg)` somewhere and returns a future of its result;
`fn` must be a module-level function and `arg` picklable (a process or a Ray task receives
them). The caller never knows which runner it has.

>>> runner = make_runner("local", workers=2)            # doctest: +SKIP
>>> runner.submit(len, "abc").result()                  # doctest: +SKIP
3
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, Protocol, TypeVar

from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerCache(Generic[T]):
    """A few objects per worker process, by key, the least recently used dropped first: what
    a job needs and is slow to build (a fitness reads its task files and tokenizer once), kept
    where a process pool or a Ray task has nowhere else to keep it.

    >>> c = WorkerCache(2)
    >>> [c.get(k, lambda: k.upper()) for k in "aba"], c.get("c", str), list(c)
    (['A', 'B', 'A'], '', ['a', 'c'])
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return self.put(key, build())

    def put(self, key: Hashable, value: T) -> T:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


# fitnesses kept per worker process, by spec: evolve's and breed's jobs share the bound
FITNESS_CACHE = 4


class Runner(Protocol):
    workers: int

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future: ...

    def close(self) -> None: ...


class InlineRunner:
    """Runs each job in this process when submitted (workers = 1; easiest to debug)."""

    workers = 1

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(arg))
        except Exception as e:  # handed to the caller through the future, like a pool would
            fut.set_exception(e)
        return fut

    def close(self) -> None:
        pass


class ProcessRunner:
    """`workers` processes on this machine (spawned: torch and fork do not mix well)."""

    def __init__(self, workers: int):
        self.workers = workers
        ctx = multiprocessing.get_context("spawn")
        self._pool = cf.ProcessPoolExecutor(workers, mp_context=ctx,
                                            initializer=_init_worker)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        return self._pool.submit(fn, arg)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING)


class RayRunner:
    """Runs jobs as Ray tasks: on the cluster at `address`, or a local one started here.
    gpus: GPUs each task asks for (1 when the run's device is a GPU)."""

    def __init__(self, workers: int, address: str | None = None, gpus: float = 0):
        try:
            import ray
        except ImportError as e:
            raise KinmergeError("the Ray backend needs the `ray` package",
                                where="--backend ray",
                                fix="pip install 'kinmerge[ray]' (or use --backend local)") from e
        self._ray = ray
        self._started = not ray.is_initialized()
        self._temp: str | None = None
        if self._started:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local test clusters
            kw: dict = {"address": address} if address else {"num_cpus": workers}
            if not address:
                # a short path of its own: Ray's socket paths must fit in 107 bytes, and
                # nothing should be left in the home directory
                self._temp = kw["_temp_dir"] = tempfile.mkdtemp(prefix="kmray-", dir="/tmp")
            ray.init(include_dashboard=False, log_to_driver=False, **kw)
        self.workers, self._gpus = workers, gpus
        self._tasks: dict[Callable, Any] = {}

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        if fn not in self._tasks:
            self._tasks[fn] = self._ray.remote(num_cpus=1, num_gpus=self._gpus)(fn)
        return self._tasks[fn].remote(arg).future()

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)


def make_runner(backend: str, workers: int, *, ray_address: str | None = None,
                device: str = "cpu") -> Runner:
    """inline (local, 1 worker), a process pool (local, K workers) or Ray."""
    if backend == "ray":
        return RayRunner(workers, ray_address, gpus=1 if device.startswith("cuda") else 0)
    if backend != "local":
        raise KinmergeError(f"unknown backend {backend!r}", where="--backend",
                            fix="use local or ray")
    return InlineRunner() if workers <= 1 else ProcessRunner(workers)
