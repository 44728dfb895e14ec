"""Evolution's job: one candidate merged in memory and scored (run by a kinmerge.search.runners
runner: inline, a local process pool, or a Ray cluster).

A `Job` (a recipe as YAML text, DFS scales, a split, the config: small and picklable) goes to
`evaluate_job` in some worker and comes back as a `Result`. The recipe text carries the
candidate's merge seed (`seed:`), the one place it lives.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

from kinmerge.search.runners import (FITNESS_CACHE, InlineRunner, ProcessRunner,  # noqa: F401
                                     RayRunner, Runner, WorkerCache, make_runner)
from kinmerge.threads import using

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    key: str  # e.g. "ps/17" or "baseline/ties-w0.5"
    recipe_yaml: str  # its `seed:` is the candidate's merge seed
    split: str  # "search" | "heldout"
    config_json: str  # the EvolveConfig, so a worker builds the same fitness and device
    scales: tuple[float, ...] | None = None
    model_dir: str | None = None  # score this saved model instead (checks an export)
    threads: int | None = None  # torch threads for the job (None: kinmerge.threads' policy)


@dataclass(frozen=True)
class Result:
    key: str
    scores: dict[str, float]
    fitness: float
    merge_seconds: float
    load_seconds: float
    eval_seconds: float
    worker: str


# A few fitnesses per worker process, by config: evaluators load task files and tokenizers
# once, not once per candidate.
_FITNESS: WorkerCache = WorkerCache(FITNESS_CACHE)


def _fitness(config_json: str):
    from kinmerge.evaluate.fitness import TaskFitness
    from kinmerge.search.evolve.config import EvolveConfig
    from kinmerge.search.evolve.fitness import BATCH

    return _FITNESS.get(config_json, lambda: TaskFitness(
        EvolveConfig.model_validate_json(config_json).fitness, batch_size=BATCH))


_CACHE: dict[str, object] = {}  # this worker's TensorCache, by device and budget


def _cache(device: str, budget: int):
    """This worker's source-tensor cache (kinmerge.io.cache), or None when the budget is 0;
    one per process: a new device or budget replaces it."""
    from kinmerge.io.cache import TensorCache

    if budget <= 0:
        _CACHE.clear()
        return None
    key = f"{device}/{budget}"
    if key not in _CACHE:
        _CACHE.clear()  # the old one's tensors go before the new one fills
        _CACHE[key] = TensorCache(budget, device)
    return _CACHE[key]


def evaluate_job(job: Job) -> Result:
    """Merge the job's recipe in memory, build the model, score it (runs in any worker).

    Under kinmerge.threads' policy for evaluation, with the job's `threads` (evolve's
    `threads=`); KINMERGE_EVAL_THREADS, if set, still wins over the policy when the job names
    none. torch's thread count is restored when the job returns.
    """
    n = os.environ.get("KINMERGE_EVAL_THREADS", "").strip()
    with using("matmul", job.threads if job.threads is not None else int(n) if n else None):
        return _evaluate_job(job)


def _evaluate_job(job: Job) -> Result:
    import torch

    from kinmerge.search.evolve.candidate import build_candidate, load_candidate
    from kinmerge.search.evolve.config import EvolveConfig
    from kinmerge.core.recipe import load_recipe

    cfg = EvolveConfig.model_validate_json(job.config_json)
    device = cfg.device
    fitness = _fitness(job.config_json)
    if job.model_dir:
        cand = load_candidate(job.model_dir, device)
    else:
        cand = build_candidate(load_recipe(job.recipe_yaml), scales=job.scales, device=device,
                               cache=_cache(device, cfg.worker_cache))
    t0, loaded_before = time.perf_counter(), cand.load_seconds
    with torch.no_grad():
        scores = fitness.scores(cand, job.split)
    # the module is built on first use, inside the scoring: that time is loading
    eval_s = time.perf_counter() - t0 - (cand.load_seconds - loaded_before)
    result = Result(job.key, scores, fitness.combine(scores), cand.merge_seconds,
                    cand.load_seconds, eval_s, f"{socket.gethostname()}:{os.getpid()}")
    cand.release()
    return result
