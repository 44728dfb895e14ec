"""Where candidates are evaluated: inline, a local process pool, or a Ray cluster.

A runner takes `Job`s (a recipe as YAML text, a seed, DFS scales, a split: small and
picklable) and returns futures of `Result`s. The search loop never knows which runner it has.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import Protocol

from kinmerge.errors import KinmergeError
from kinmerge.threads import using

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    key: str  # e.g. "ps/17" or "baseline/ties-w0.5"
    recipe_yaml: str
    seed: int | None
    split: str  # "search" | "heldout"
    config_json: str  # the EvolveConfig, so a worker builds the same fitness
    scales: tuple[float, ...] | None = None
    model_dir: str | None = None  # score this saved model instead (checks an export)


@dataclass(frozen=True)
class Result:
    key: str
    scores: dict[str, float]
    fitness: float
    merge_seconds: float
    load_seconds: float
    eval_seconds: float
    worker: str


class Runner(Protocol):
    workers: int

    def submit(self, job: Job) -> cf.Future: ...

    def close(self) -> None: ...


# One fitness per worker process and config: evaluators load task files and tokenizers once,
# not once per candidate. (A process pool or a Ray task has nowhere else to keep them.)
_FITNESS: dict[str, object] = {}


def evaluate_job(job: Job) -> Result:
    """Merge the job's recipe in memory, build the model, score it (runs in any worker).

    Under kinmerge.threads' policy for evaluation (KINMERGE_EVAL_THREADS, if set, wins);
    torch's thread count is restored when the job returns.
    """
    n = os.environ.get("KINMERGE_EVAL_THREADS", "").strip()
    with using("matmul", int(n) if n else None):
        return _evaluate_job(job)


def _evaluate_job(job: Job) -> Result:
    import torch

    from kinmerge.evolve.candidate import build_candidate, load_candidate
    from kinmerge.evolve.config import EvolveConfig
    from kinmerge.evolve.fitness import TaskFitness
    from kinmerge.recipe import load_recipe

    fitness = _FITNESS.get(job.config_json)
    if fitness is None:
        cfg = EvolveConfig.model_validate_json(job.config_json)
        fitness = _FITNESS[job.config_json] = TaskFitness(cfg.fitness)
    if job.model_dir:
        cand = load_candidate(job.model_dir)
    else:
        cand = build_candidate(load_recipe(job.recipe_yaml), seed=job.seed, scales=job.scales)
    t0 = time.perf_counter()
    with torch.no_grad():
        scores = fitness.scores(cand, job.split)
    eval_s = time.perf_counter() - t0
    return Result(job.key, scores, fitness.combine(scores), cand.merge_seconds,
                  cand.load_seconds, eval_s,
                  f"{socket.gethostname()}:{os.getpid()}")


class InlineRunner:
    """Evaluates each job in this process when submitted (workers = 1; easiest to debug)."""

    workers = 1

    def submit(self, job: Job) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(evaluate_job(job))
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

    def submit(self, job: Job) -> cf.Future:
        return self._pool.submit(evaluate_job, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING)


class RayRunner:
    """Evaluates jobs as Ray tasks: on the cluster at `address`, or a local one started here."""

    def __init__(self, workers: int, address: str | None = None):
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
        self.workers = workers
        self._task = ray.remote(num_cpus=1)(evaluate_job)

    def submit(self, job: Job) -> cf.Future:
        return self._task.remote(job).future()

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)


def make_runner(backend: str, workers: int, *, ray_address: str | None = None) -> Runner:
    if backend == "ray":
        return RayRunner(workers, ray_address)
    if backend != "local":
        raise KinmergeError(f"unknown backend {backend!r}", where="--backend",
                            fix="use local or ray")
    return InlineRunner() if workers <= 1 else ProcessRunner(workers)
