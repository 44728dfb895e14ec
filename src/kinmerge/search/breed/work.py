"""One unit of breeding work, run by any runner (inline, a process pool, Ray): merge a child
into its folder if it is not there yet, then score the folder.

A `BreedJob` is small and picklable; the driver (`Breeder`) plans jobs, decides names and
the budget, and records each `Outcome` in the run database the moment it comes back, so
jobs may finish in any order without changing the run's results.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from kinmerge import lineage
from kinmerge.evaluate.candidate import Candidate
from kinmerge.evaluate.fitness import Fitness, TaskFitness, check_finite
from kinmerge.evaluate.tasks import FitnessSpec
from kinmerge.io.atomic import remove_leftovers
from kinmerge.core.merge import merge
from kinmerge.search.runners import FITNESS_CACHE, Runner, WorkerCache
from kinmerge.threads import using

log = logging.getLogger(__name__)
FitnessRef = Any  # a FitnessSpec as JSON text (rebuilt, cached, in each worker) or a Fitness


@dataclass(frozen=True)
class BreedJob:
    name: str
    path: str  # the model's folder (a child's: OUT/models/<name>)
    fitness: FitnessRef
    recipe: dict | None = None  # merge this into `path` first (None: score it as it is)
    seed: int = 0
    device: str = "cpu"
    parent_ids: tuple[str, ...] = ()  # lineage ids a finished folder must descend from
    lineage: dict = field(default_factory=dict)  # generation, parent_kinship
    split: str = "search"
    threads: int | None = None  # torch threads for the merge and the scoring (None: policy)


@dataclass(frozen=True)
class Outcome:
    name: str
    merged: bool  # merged now (False: scored only, or a finished folder adopted)
    scores: dict[str, float]
    fitness: float
    seconds: float  # evaluation
    worker: str


def run_job(job: BreedJob) -> Outcome:
    """Merge (if needed) and score one model; runs in any worker, the merge and the scoring
    each under kinmerge.threads' policy with the job's `threads`."""
    import torch

    merged = _merge(job) if job.recipe is not None else False
    fitness = fitness_for(job.fitness)
    cand = Candidate.from_dir(job.path, device=job.device)
    t0 = time.perf_counter()
    with torch.no_grad(), using("matmul", job.threads):
        scores = fitness.scores(cand, job.split)  # type: ignore[arg-type]
    value = check_finite(fitness.combine(scores), cand, job.split)  # NaN cannot be ranked
    cand.release()
    return Outcome(job.name, merged, scores, value, time.perf_counter() - t0,
                   f"{socket.gethostname()}:{os.getpid()}")


def _merge(job: BreedJob) -> bool:
    path = Path(job.path)
    lin = lineage.read(path) if path.is_dir() else None
    if lin is not None and set(job.parent_ids) <= set(lin.model.parents):
        return False  # merged by a killed run before it could record it: adopt it
    _clean_partial(path)  # not there, or a stale folder from another run: (re)merge
    merge(job.recipe, path, seed=job.seed, overwrite=True, device=job.device,
          lineage=job.lineage, threads=job.threads)
    log.debug("merged %s", path.name)  # the driver logs it, with the parents, in order
    return True


def _clean_partial(path: Path) -> None:
    """Remove what a killed merge left: its temporary folders and a stale output."""
    remove_leftovers(path)
    if path.exists():
        shutil.rmtree(path)


_FITNESS: WorkerCache[Fitness] = WorkerCache(FITNESS_CACHE)  # by spec, per process


def fitness_for(ref: FitnessRef) -> Fitness:
    """The fitness a job names: rebuilt from its spec once per process, or the object."""
    if not isinstance(ref, str):
        return ref
    return _FITNESS.get(ref, lambda: TaskFitness(FitnessSpec.model_validate_json(ref)))


def prime_fitness(ref: str, fitness: Fitness) -> None:
    """Keep `fitness`, built by the driver from `ref`, for jobs run in this process."""
    _FITNESS.put(ref, fitness)


def run_all(runner: Runner, jobs: Sequence[BreedJob],
            record: Callable[[BreedJob, Outcome], None],
            report: Callable[[BreedJob, Outcome], None] | None = None) -> None:
    """Run `jobs`, at most `runner.workers` at once, in order of submission; `record` each
    outcome as it arrives, and `report` it (progress lines) in the order of `jobs`, whatever
    finished first. After a failure nothing new starts; what is running finishes and is
    recorded, then the first error is raised (a resumed run redoes only the failed job)."""
    todo, pending = list(jobs), {}
    error: BaseException | None = None
    finished: dict[int, Outcome] = {}
    i = shown = 0
    while True:
        while error is None and i < len(todo) and len(pending) < max(runner.workers, 1):
            pending[runner.submit(run_job, todo[i])] = i
            i += 1
        if not pending:
            break
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            k = pending.pop(fut)
            try:
                out = fut.result()
            except Exception as e:  # noqa: BLE001 -- re-raised below, after the others
                error = error or e
                continue
            record(todo[k], out)  # committed the moment it is back
            finished[k] = out
            while shown in finished:
                if report is not None:
                    report(todo[shown], finished[shown])
                shown += 1
    for k in sorted(finished):  # after a failure: what did finish, still in order
        if k >= shown and report is not None:
            report(todo[k], finished[k])
    if error is not None:
        raise error
