"""The CMA-ES loop: Optuna's CmaEsSampler over an RDB study, asked and told by hand.

Every finished trial is committed to the study database (SQLite by default, any SQLAlchemy
URL) with its genome, recipe, seed, scores and timings, so a run killed at any moment resumes
without losing one. Trials a killed run left RUNNING are marked FAIL on resume and re-asked:
the budget counts COMPLETE trials only, so nothing is lost and nothing counted twice.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import sqlite3
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from kinmerge.errors import KinmergeError, short_repr
from kinmerge.search.jobs import Job, Result, run_job
from kinmerge.search.runners import Runner

log = logging.getLogger(__name__)
FINGERPRINT = "kinmerge:fingerprint"
UNIT = FloatDistribution(0.0, 1.0)


@dataclass(frozen=True)
class GenerationStats:
    phase: str
    generation: int
    trials: int  # finished trials so far in this phase
    best: float  # best fitness so far
    mean: float  # mean fitness of this generation
    trials_per_s: float


def default_popsize(n: int) -> int:
    """CMA-ES's default population for n dimensions: 4 + floor(3 ln n)."""
    return 4 + int(math.floor(3 * math.log(n)))


def open_study(storage: str, name: str, *, resume: bool, fingerprint: str, seed: int,
               x0: dict[str, float], popsize: int) -> optuna.Study:
    """Create the study, or load it for `--resume`; marks a killed run's RUNNING trials FAIL."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        # Optuna 4.9+ deprecates x0 (removal planned for 6.0) without a replacement in the
        # core sampler; DFS needs it (its x0 is A's own path, not the box centre)
        warnings.filterwarnings("ignore", message=".*x0.*deprecated", category=FutureWarning)
        # sigma0 left to Optuna: its default is (high - low) / 6 = 1/6 on our [0, 1] genes
        sampler = optuna.samplers.CmaEsSampler(x0=x0, popsize=popsize, seed=seed,
                                               warn_independent_sampling=False)
    url, storage = storage, rdb_storage(storage)
    place, phase = storage_label(url), name.rsplit(":", 1)[-1]
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if name in existing and not resume:
        raise KinmergeError(f"{place} already holds this run's {phase} study (the search was "
                            "started before)", where=place,
                            fix="pass resume=True to continue it, or choose another out folder",
                            cli_fix="pass --resume to continue it, or choose another --out")
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                direction="maximize", load_if_exists=True)
    old = study.user_attrs.get(FINGERPRINT)
    if old is None:
        study.set_user_attr(FINGERPRINT, fingerprint)
    elif old != fingerprint:
        raise KinmergeError("evolve.yml changed since this study was started "
                            "(search space, fitness, budget or seed differ)",
                            where=f"the {phase} study in {place}",
                            fix="resume with the original evolve.yml, or start in another out "
                                "folder",
                            cli_fix="resume with the original evolve.yml, or start a new --out")
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if t.state == TrialState.RUNNING:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            log.info("trial %d was left running by an interrupted run: marked failed", t.number)
    return study


def storage_label(url: str) -> str:
    """Where the studies live, as the user knows it: the SQLite file, or the database URL
    without its password (never Optuna's internal study names)."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse fails later, with its own message
        return url


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; SQLite in WAL mode with normal sync, since every parameter and
    attribute is its own commit and a full fsync each (~10 ms here) dominated small runs.
    A committed trial still survives kill -9 (only an OS crash could lose the last ones)."""
    if not url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url)
    path = url.removeprefix("sqlite:///")

    def connect() -> sqlite3.Connection:
        c = sqlite3.connect(path, timeout=60, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        return c

    return optuna.storages.RDBStorage(url, engine_kwargs={"creator": connect})


def run_search(study: optuna.Study, names: Sequence[str], x0: Sequence[float], trials: int,
               runner: Runner, make_job: Callable[[int, list[float]], tuple[Job, dict]],
               *, phase: str, popsize: int,
               on_generation: Callable[[GenerationStats], None] | None = None) -> None:
    """Ask, evaluate and tell until the study holds `trials` COMPLETE trials.

    make_job(trial number, genome) -> (job, user attrs to store with the trial).
    A whole CMA-ES generation is asked at once, run at most `runner.workers` jobs at a time,
    and told in the order it was asked: the trials, genomes and scores are the same whether
    one worker runs them or many, and whichever finishes first.
    """
    dists = {n: UNIT for n in names}
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(dict(zip(names, x0)))  # trial 0 scores x0 itself
    tracker = _Tracker(phase, popsize, on_generation, study)
    batch: list[tuple[optuna.Trial, Job]] = []
    try:
        while done < trials:
            # the first trial runs alone: CMA-ES needs one finished trial to know the space;
            # then what the current generation lacks (trial 0 sits before generation 0)
            width = 1 if done == 0 else popsize - (done - 1) % popsize
            while len(batch) < width and done + len(batch) < trials:
                trial = study.ask(dists)
                genome = [trial.params[n] for n in names]
                job, attrs = make_job(trial.number, genome)
                for k, v in {**attrs, "genome": genome}.items():
                    trial.set_user_attr(k, v)
                batch.append((trial, job))
            results = _run_batch(runner, [job for _, job in batch])
            while batch:  # told in the order asked
                _tell(study, batch.pop(0)[0], results.pop(0), tracker)
                done += 1
    except BaseException:
        for trial, _ in batch:  # mark what we can; a kill -9 is handled on resume
            study.tell(trial, state=TrialState.FAIL)
        raise
    tracker.flush()
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        first = study.trials[0] if study.trials else None
        recipe = first.user_attrs.get("recipe", "") if first else ""
        raise KinmergeError(
            f"{phase}: every trial's fitness was NaN or failed, so there is no best recipe "
            f"(first candidate: trial 0, recipe {short_repr(recipe)})",
            where=f"the {phase} study", fix="check the fitness on one candidate by hand "
            "(a fitness function returning NaN, or models that merge into NaN)")


def _run_batch(runner: Runner, jobs: list[Job]) -> list[Result]:
    """Every job's result, in order, with at most `runner.workers` running at once (a Ray
    cluster would otherwise start one per free CPU, each holding a model)."""
    results: list[Result | None] = [None] * len(jobs)
    running: dict[cf.Future, int] = {}
    nxt = 0
    while nxt < len(jobs) or running:
        while nxt < len(jobs) and len(running) < max(runner.workers, 1):
            running[runner.submit(run_job, jobs[nxt])] = nxt
            nxt += 1
        finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for fut in finished:
            results[running.pop(fut)] = fut.result()
    return results  # type: ignore[return-value]


def _tell(study: optuna.Study, trial: optuna.Trial, r: Result, tracker: "_Tracker") -> None:
    gen = _generation(study, trial)
    for k, v in {"scores": r.scores, "merge_seconds": r.merge_seconds,
                 "load_seconds": r.load_seconds, "eval_seconds": r.eval_seconds, "worker": r.worker,
                 "generation": gen}.items():
        trial.set_user_attr(k, v)
    if not math.isfinite(r.fitness):  # the policy: a failed trial, named here (optuna's rule)
        log.warning("trial %d scored %r (scores %s): recorded as failed; recipe %s",
                    trial.number, r.fitness, short_repr(r.scores),
                    short_repr(trial.user_attrs.get("recipe", "")))
    study.tell(trial, r.fitness)
    tracker.add(gen, r.fitness)


def _generation(study: optuna.Study, trial: optuna.Trial) -> int:
    """CMA-ES generation + 1; 0 for the x0 trial (sampled before CMA-ES starts)."""
    attrs = study._storage.get_trial_system_attrs(trial._trial_id)
    gen = next((v for k, v in attrs.items() if k.endswith("generation")), None)
    return 0 if gen is None else int(gen) + 1


class _Tracker:
    """Emits one GenerationStats per completed generation (the CLI's live line), in
    generation order: a resumed run counts the trials its study already holds, so the
    generation the first run had begun is reported when it completes, before the next."""

    def __init__(self, phase: str, popsize: int, callback, study: optuna.Study):
        self.phase, self.popsize, self.callback = phase, popsize, callback
        self.values: dict[int, list[float]] = {}
        self.emitted: set[int] = set()
        self.t0, self.count = time.perf_counter(), 0
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        self.best = max((t.value for t in done), default=-math.inf)
        self.total = len(done)
        for t in done:  # reported by the earlier run if complete; else completed here
            gen = t.user_attrs.get("generation")
            if gen is not None and gen not in self.emitted:
                self.values.setdefault(gen, []).append(t.value)
                if len(self.values[gen]) == self._size(gen):
                    self.emitted.add(gen)
                    del self.values[gen]

    def _size(self, gen: int) -> int:
        return 1 if gen == 0 else self.popsize

    def add(self, gen: int, value: float) -> None:
        self.count += 1
        self.total += 1
        self.best = max(self.best, value)
        if gen in self.emitted:  # a surplus trial of a generation already reported
            return
        self.values.setdefault(gen, []).append(value)
        if len(self.values[gen]) == self._size(gen):
            for earlier in sorted(g for g in self.values if g < gen):  # never out of order
                self._emit(earlier)
            self._emit(gen)

    def _emit(self, gen: int) -> None:
        self.emitted.add(gen)
        vals = self.values.pop(gen)
        rate = self.count / max(time.perf_counter() - self.t0, 1e-9)
        stats = GenerationStats(self.phase, gen, self.total, self.best,
                                sum(vals) / len(vals), rate)
        if self.callback:
            self.callback(stats)
        else:
            log.info("%s gen %d: best %.4f  mean %.4f  %.2f trials/s", self.phase, gen,
                     stats.best, stats.mean, rate)

    def flush(self) -> None:
        for gen in sorted(self.values):
            self._emit(gen)
