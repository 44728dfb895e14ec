"""The one job shape of the searches: what a worker merges and scores, and what comes back.

Evolution and breeding hand the same `Job` to a runner (kinmerge.search.runners: inline, a
process pool, or Ray) and get the same `Result` back from `run_job`. What differs between
them is carried as typed fields, never as loose dicts:

- `model`: where the model comes from. `InMemory` (evolution: a recipe merged in memory,
  never written, with DFS scales), `Folder` (a folder scored as it is: breeding's pool, or
  evolution's exported winner, read back through transformers), `MergeInto` (breeding: a
  recipe merged into a folder first, unless a killed run already finished it there).
- `finite`: whether a NaN or infinite fitness raises (breeding cannot rank one) or comes back
  (evolution records it as a failed trial).

A job is small and picklable: its fitness travels as its spec's JSON (rebuilt once per
worker process, kept in `WorkerCache`) or, on the inline runner, as the Fitness object.
The thread count is an argument (`threads`): the merge and the scoring each run under
kinmerge.threads' policy with it, wherever the job runs.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from kinmerge.core.merge import merge
from kinmerge.search.runners import FITNESS_CACHE, WorkerCache
from kinmerge.threads import using

if TYPE_CHECKING:
    from kinmerge.evaluate.fitness import Fitness

log = logging.getLogger(__name__)
FitnessRef = Any  # a FitnessSpec as JSON text (rebuilt, cached, in each worker) or a Fitness


@dataclass(frozen=True)
class InMemory:
    """Merge `recipe_yaml` in memory (its `seed:` is the merge seed) and score the result."""

    recipe_yaml: str
    scales: tuple[float, ...] | None = None  # DFS: hidden-state scale before each layer
    cache_bytes: int = 0  # the worker's source-tensor cache (kinmerge.io.cache); 0: none


@dataclass(frozen=True)
class Folder:
    """Score the model folder at `path` as it is."""

    path: str
    export: bool = False  # read it through transformers, DFS scales applied (checks an export)


@dataclass(frozen=True)
class ChildLineage:
    """What a bred child's lineage record adds to what the merge writes itself."""

    generation: int
    parent_kinship: tuple[tuple[str, float], ...] = ()  # (metric, value)
    predicted_gain: float | None = None  # select: predicted
    predicted_by: str | None = None

    def fields(self) -> dict:
        """The lineage fields, as `kinmerge.merge(lineage=...)` takes them."""
        out: dict = {"generation": self.generation, "parent_kinship": dict(self.parent_kinship)}
        if self.predicted_gain is not None:
            out.update(predicted_gain=self.predicted_gain, predicted_by=self.predicted_by)
        return out


@dataclass(frozen=True)
class MergeInto:
    """Merge `recipe` into the folder `path`, then score it; a finished folder that already
    descends from `parent_ids` (merged by a killed run before it could record it) is adopted."""

    path: str
    recipe: dict  # the recipe, as kinmerge.merge takes it
    seed: int = 0
    parent_ids: tuple[str, ...] = ()  # lineage ids a finished folder must descend from
    lineage: ChildLineage | None = None


Model = Union[InMemory, Folder, MergeInto]


@dataclass(frozen=True)
class Job:
    key: str  # the name the driver files the result under ("ps/17", "g2-03", "best")
    model: Model
    fitness: FitnessRef
    split: str = "search"  # "search" | "heldout"
    device: str = "cpu"
    threads: int | None = None  # torch threads of the merge and the scoring (None: policy)
    batch_size: int | None = None  # the built-in evaluators' batch (None: their default)
    finite: bool = False  # True: a NaN or infinite fitness raises instead of coming back

    @property
    def path(self) -> str | None:
        """The model's folder (None: merged in memory)."""
        return None if isinstance(self.model, InMemory) else self.model.path

    @property
    def merges(self) -> bool:
        """Whether the job merges a folder (breeding's child) before scoring it."""
        return isinstance(self.model, MergeInto)


@dataclass(frozen=True)
class Result:
    key: str
    scores: dict[str, float]
    fitness: float
    worker: str  # host:pid
    eval_seconds: float  # the scoring, the module's build excluded
    load_seconds: float = 0.0  # tensors -> module
    merge_seconds: float = 0.0  # in memory (InMemory); 0 for a folder
    merged: bool = False  # MergeInto merged now (False: scored only, or a folder adopted)


def run_job(job: Job) -> Result:
    """Merge (if the job says so) and score one model; runs in any worker, the merge and the
    scoring each under kinmerge.threads' policy with the job's `threads`."""
    import torch

    from kinmerge.evaluate.fitness import check_finite
    from kinmerge.search.memory import trim_heap

    merged = _merge(job.model, job) if isinstance(job.model, MergeInto) else False
    fitness = fitness_for(job.fitness, job.batch_size)
    with using("matmul", job.threads):
        cand = _candidate(job)
    try:
        t0, loaded_before = time.perf_counter(), cand.load_seconds
        with torch.no_grad(), using("matmul", job.threads):
            scores = fitness.scores(cand, job.split)
        # the module is built on first use, inside the scoring: that time is loading
        eval_s = time.perf_counter() - t0 - (cand.load_seconds - loaded_before)
        value = fitness.combine(scores)
        if job.finite:
            value = check_finite(value, cand, job.split)
        return Result(job.key, scores, value, f"{socket.gethostname()}:{os.getpid()}", eval_s,
                      cand.load_seconds, cand.merge_seconds, merged)
    finally:  # also when scoring fails: a kept traceback must not pin the candidate's tensors
        cand.release()
        trim_heap()  # its freed tensors go back to the system before the next job's peak


def _candidate(job: Job):
    from kinmerge.evaluate.candidate import Candidate
    from kinmerge.search.evolve.candidate import build_candidate, load_candidate

    m = job.model
    if isinstance(m, InMemory):
        from kinmerge.core.recipe import load_recipe

        recipe = load_recipe(m.recipe_yaml)
        return build_candidate(recipe, scales=m.scales, device=job.device,
                               cache=_cache(_cache_device(recipe, job.device), m.cache_bytes),
                               threads=job.threads)
    if isinstance(m, Folder) and m.export:
        return load_candidate(m.path, job.device)
    return Candidate.from_dir(m.path, device=job.device)


def _merge(m: MergeInto, job: Job) -> bool:
    from kinmerge import lineage

    path = Path(m.path)
    lin = lineage.read(path) if path.is_dir() else None
    if lin is not None and set(m.parent_ids) <= set(lin.model.parents):
        return False  # merged by a killed run before it could record it: adopt it
    _clean_partial(path)  # not there, or a stale folder from another run: (re)merge
    merge(m.recipe, path, seed=m.seed, overwrite=True, device=job.device,
          lineage=m.lineage.fields() if m.lineage is not None else None, threads=job.threads)
    log.debug("merged %s", path.name)  # the driver logs it, with the parents, in order
    return True


def _clean_partial(path: Path) -> None:
    """Remove what a killed merge left: its temporary folders and a stale output."""
    from kinmerge.io.atomic import remove_leftovers

    remove_leftovers(path)
    if path.exists():
        shutil.rmtree(path)


# A few fitnesses per worker process, by spec and batch: evaluators load task files and
# tokenizers once, not once per job.
_FITNESS: WorkerCache["Fitness"] = WorkerCache(FITNESS_CACHE)


def fitness_for(ref: FitnessRef, batch_size: int | None = None) -> "Fitness":
    """The fitness a job names: rebuilt from its spec once per process, or the object."""
    if not isinstance(ref, str):
        return ref
    from kinmerge.evaluate.fitness import TaskFitness
    from kinmerge.evaluate.tasks import FitnessSpec

    return _FITNESS.get((ref, batch_size), lambda: TaskFitness(
        FitnessSpec.model_validate_json(ref), batch_size=batch_size))


def prime_fitness(ref: str, fitness: "Fitness", batch_size: int | None = None) -> None:
    """Keep `fitness`, built by the driver from `ref`, for jobs run in this process."""
    _FITNESS.put((ref, batch_size), fitness)


_CACHE: dict[str, object] = {}  # this worker's TensorCache, by device and budget


def _cache_device(recipe, device: str) -> str:
    """Where the worker keeps the sources of `recipe`'s candidates: where its method computes
    (`core.execute.compute_device`). A method that runs on the CPU under `cuda` (slerp and
    the other norm/angle methods) reads a CPU cache, instead of a GPU cache whose every
    tensor it would copy back to the CPU for every candidate."""
    from kinmerge.core.execute import compute_device
    from kinmerge.methods.registry import get_method

    return str(compute_device(get_method(recipe.merge_method), device))


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


__all__ = ["ChildLineage", "FitnessRef", "Folder", "InMemory", "Job", "MergeInto", "Result",
           "fitness_for", "prime_fitness", "run_job"]
