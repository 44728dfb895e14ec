"""Where independent jobs run: inline, a local process pool, or a Ray cluster.

Evolution's candidates and a breeding generation's merges and evaluations go through the
same runners. `submit(fn, arg)` runs `fn(arg)` somewhere and returns a future of its result;
`fn` must be a module-level function and `arg` picklable (a process or a Ray task receives
them). The caller never knows which runner it has.

Where models live on a cluster: every model path a run names (and the run's OUT folder,
where breeding writes children and evolution its exports) must be a path every node sees at
the same place (a shared filesystem); a hub id is fetched by each node itself (network or a
pre-filled Hugging Face cache on every node). A Ray task first checks that it sees the run's
paths and fails at once with one error naming its node and the path (never retried: the
path will not appear on a retry).

>>> runner = make_runner("local", workers=2)            # doctest: +SKIP
>>> runner.submit(len, "abc").result()                  # doctest: +SKIP
3
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
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
RETRIES = 3  # Ray reruns a task whose node or worker process died (never one that raised)


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
    # no thread setting here: every job carries its thread count and runs under
    # kinmerge.threads.using (an OMP_NUM_THREADS set here would override the policy)
    logging.basicConfig(level=logging.WARNING)


@contextlib.contextmanager
def _env_default(name: str, value: str):
    """`name`=`value` in the environment while the block runs, unless it is set already."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


class RayRunner:
    """Runs jobs as Ray tasks: on the cluster at `address`, or a local one started here.
    gpus: GPUs each task asks for (1 when the run's device is a GPU). shared: the paths every
    task must see (see `shared_paths`); a task that does not see one fails with an error
    naming its node and the path. A task whose node dies is retried by Ray elsewhere (jobs
    are deterministic, and the caller records each result once)."""

    def __init__(self, workers: int, address: str | None = None, gpus: float = 0,
                 shared: tuple[str, ...] = ()):
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
            kw: dict = {"address": address} if address else {"num_cpus": workers}
            if address:  # a cluster of the user's: its own auth settings, untouched
                ray.init(include_dashboard=False, log_to_driver=False, **kw)
            else:
                # a short path of its own: Ray's socket paths must fit in 107 bytes, and
                # nothing should be left in the home directory
                self._temp = kw["_temp_dir"] = tempfile.mkdtemp(prefix="kmray-", dir="/tmp")
                # the instance started here and now, for this run alone, needs no token
                # (unless the user set an auth mode); the variable is set only around its start
                with _env_default("RAY_AUTH_MODE", "disabled"):
                    ray.init(include_dashboard=False, log_to_driver=False, **kw)
        self.workers, self._gpus, self._shared = workers, gpus, tuple(shared)
        self._task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RETRIES)(_on_node)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> cf.Future:
        return _unwrapped(self._task.remote(fn, arg, self._shared).future())

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)


def shared_paths(refs: Any) -> tuple[str, ...]:
    """The local paths among `refs` (model references, `base+lora` split, and folders), as
    written: what every node of a cluster must see. A reference that is no path here is a
    hub id, which each node resolves itself."""
    from kinmerge.io.refs import split_lora

    out: list[str] = []
    for ref in refs:
        if ref is None:
            continue
        for part in split_lora(ref) if "+" in str(ref) else (str(ref), None):
            if part and os.path.exists(part) and part not in out:
                out.append(str(part))
    return tuple(out)


def _on_node(fn: Callable[[Any], Any], arg: Any, shared: tuple[str, ...]) -> Any:
    """A Ray task's body: check this node sees the run's paths, then run the job."""
    missing = next((p for p in shared if not os.path.exists(p)), None)
    if missing is not None:
        raise NodePathError(missing, _node_name())
    return fn(arg)


def _node_name() -> str:
    import socket

    try:
        import ray

        ctx = ray.get_runtime_context()
        return (f"{socket.gethostname()} ({ray.util.get_node_ip_address()}, "
                f"Ray node {ctx.get_node_id()[:12]})")
    except Exception:  # noqa: BLE001 -- a name for the message; never fails the check itself
        return socket.gethostname()


class NodePathError(KinmergeError):
    """A cluster node does not see a path the run needs (a model, or the run's folder)."""

    def __init__(self, path: str, node: str):
        self.path, self.node = path, node
        super().__init__(f"node {node} cannot see {path}: every node of the cluster must see "
                         "the run's model paths and its output folder at the same place",
                         where=f"a Ray task on {node}",
                         fix="put the models and --out on a filesystem every node mounts at "
                             "the same path (use absolute paths), or name models by hub id")

    def __reduce__(self):  # rebuilt on the driver from its fields, not its message
        return NodePathError, (self.path, self.node)


def _unwrapped(ray_future: cf.Future) -> cf.Future:
    """A future that fails with the job's own KinmergeError (not Ray's wrapper around it,
    whose text carries a remote traceback)."""
    out: cf.Future = cf.Future()

    def done(f: cf.Future) -> None:
        try:
            out.set_result(f.result())
        except BaseException as e:  # noqa: BLE001 -- handed on through the future
            cause = getattr(e, "cause", None)
            out.set_exception(cause if isinstance(cause, KinmergeError) else e)

    ray_future.add_done_callback(done)
    return out


def make_runner(backend: str, workers: int, *, ray_address: str | None = None,
                device: str = "cpu", shared: tuple[str, ...] = ()) -> Runner:
    """inline (local, 1 worker), a process pool (local, K workers) or Ray. shared: the
    paths every Ray node must see (`shared_paths` of the run's models and OUT)."""
    if backend == "ray":
        return RayRunner(workers, ray_address, gpus=1 if device.startswith("cuda") else 0,
                         shared=shared)
    if backend != "local":
        raise KinmergeError(f"unknown backend {backend!r}", where="--backend",
                            fix="use local or ray")
    return InlineRunner() if workers <= 1 else ProcessRunner(workers)
