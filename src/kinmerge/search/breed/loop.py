"""Iterative merging with kinship (Hu et al. 2024, Algorithm 1; docs/guides/breed.md, "The loop").

Generation 1 merges every pair of the pool; each later generation merges every pair of the
top-k not merged before and, with exploration, the best model with its least-related
relative. With `select: predicted` each generation instead merges the candidate pairs of
best predicted gain (breed/predict.py). Every decision is a function of cached fitness and
kinship values (ties broken by creation order), so a resumed run replays the same decisions
and redoes no finished work.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kinmerge import lineage
from kinmerge.methods import REGISTRY
from kinmerge.search.breed.config import BreedConfig
from kinmerge.search.breed.fitness import KinshipFn
from kinmerge.search.breed.predict import (PairStats, Prediction, candidate_pairs, choose,
                                           fit_gain, width)
from kinmerge.search.breed.state import BreedState
from kinmerge.search.breed.summary import Generation, Merge
from kinmerge.search.breed.work import BreedJob, FitnessRef, Outcome, run_all
from kinmerge.search.runners import InlineRunner, Runner
from kinmerge.lineage.publish import refresh_card

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """A pair a generation merges (or a pool model to score: b None), parents in recipe order."""

    a: str
    b: str | None
    origin: str  # "pool", "top-k", "explore" or "predicted"
    prediction: Prediction | None = None  # select: predicted


@dataclass(frozen=True)
class Work:
    """One pair of a generation and what is left to do for it."""

    pair: Pair
    name: str  # the child (or the pool model)
    job: BreedJob | None  # None: merged and scored before
    seq: int | None = None  # creation order of a new child


@dataclass
class Breeder:
    cfg: BreedConfig
    out: Path
    state: BreedState
    fitness: FitnessRef  # a Fitness, or its spec as JSON (rebuilt in each worker)
    kinship_fn: KinshipFn
    on_generation: Callable[[dict], None] | None = None
    # the models of M at this point of the loop: a resumed run replays from the pool, so
    # models made later by the killed run must stay invisible until the replay reaches them
    present: set[str] = field(default_factory=set)
    runner: Runner = field(default_factory=InlineRunner)  # where merges and scores run
    threads: int | None = None  # torch threads of each merge and scoring (None: the policy)

    # measurements (cached) --------------------------------------------------------------
    def kinship(self, a: str, b: str) -> float:
        metric = self.cfg.kinship.metric
        cached = self.state.kinship(a, b, metric)
        if cached is None:
            m = self.state.models()
            cached = self.kinship_fn(m[a].path, m[b].path, self.cfg.base_model, metric)
            self.state.add_kinship(a, b, metric, cached)
        return cached

    def top_k_kinship(self, top: list[str]) -> float:
        pairs = list(itertools.combinations(top, 2))
        return sum(self.kinship(a, b) for a, b in pairs) / max(len(pairs), 1)

    # ranking ----------------------------------------------------------------------------
    def ranked(self) -> list[str]:
        """Evaluated models, best first; ties go to the older model."""
        rows = self.state.models()
        done = [(self.state.evaluation(n), r.seq, n) for n, r in rows.items()
                if n in self.present]
        return [n for ev, seq, n in sorted((d for d in done if d[0] is not None),
                                           key=lambda d: (-d[0][0], d[1]))]

    def top_k(self) -> list[str]:
        return self.ranked()[: self.cfg.k]

    def ordered(self, a: str, b: str) -> tuple[str, str]:
        """Parents in recipe order: the fitter first (the t=0 end of SLERP)."""
        rank = self.ranked()
        return (a, b) if rank.index(a) <= rank.index(b) else (b, a)

    def merged_pairs(self) -> set[tuple[str, str]]:
        """Pairs merged so far in this replay (a resumed run sees the killed run's later
        merges only when it reaches them again)."""
        rows = self.state.models()
        return {tuple(sorted(rows[c].parents)) for c in self.present if rows[c].parents}

    # exploration ------------------------------------------------------------------------
    def ancestors(self, name: str) -> set[str]:
        rows, seen, todo = self.state.models(), set(), list(self.state.models()[name].parents)
        while todo:
            p = todo.pop()
            if p not in seen and p in rows:
                seen.add(p)
                todo.extend(rows[p].parents)
        return seen

    def least_related(self, best: str, planned: set[tuple[str, str]]) -> str | None:
        """The model of lowest kinship to `best` that is neither `best` nor one of its
        ancestors and was never paired with it (now or before)."""
        excluded = self.ancestors(best) | {best}
        merged = self.merged_pairs() | {tuple(sorted(p)) for p in planned}
        cands = [n for n in self.ranked() if n not in excluded
                 and tuple(sorted((best, n))) not in merged]
        if not cands:
            return None
        seq = {n: r.seq for n, r in self.state.models().items()}
        sign = -1.0 if self.cfg.kinship.metric == "ed" else 1.0  # ed: farthest = least related

        def key(n: str) -> tuple[bool, float, int]:
            k = self.kinship(best, n)  # an undefined kinship (NaN) is never the pick
            return (math.isnan(k), 0.0 if math.isnan(k) else sign * k, seq[n])

        return min(cands, key=key)

    # merging and scoring (planned here, run by the runner) -------------------------------
    def measure(self, gen: int, pairs: list[Pair]) -> tuple[list[tuple[Pair, str]], bool]:
        """Merge (once ever) and score (once ever) the children of `pairs`, in parallel on the
        runner; returns (pair, child) of each, and whether the budget cut the list short.
        Pool models are scored with Pair(name, None, "pool")."""
        works, out_of_budget = self.plan_work(gen, pairs)
        jobs = {w.name: w for w in works if w.job is not None}
        run_all(self.runner, [w.job for w in jobs.values()],
                lambda job, out: self.record_outcome(gen, jobs[job.name], out),
                lambda job, out: self.report(jobs[job.name], out))  # in plan order
        self.present.update(w.name for w in works)
        return [(w.pair, w.name) for w in works], out_of_budget

    def plan_work(self, gen: int, pairs: list[Pair]) -> tuple[list[Work], bool]:
        """The work of the pairs the budget allows, in order, as a
        sequential run would do them: never merge a child that cannot be scored."""
        limit, count = self.cfg.budget.evaluations, self.state.evaluation_count()
        reserved, rows = self.state.reserved(), self.state.models()
        pool = sum(r.origin == "pool" for r in rows.values())
        taken = {n for n, r in rows.items() if r.origin != "pool"}
        taken |= {c for c, _ in reserved.values()}
        works, new = [], []
        for pair in pairs:
            a, b = pair.a, pair.b
            done = a if b is None else self.state.child_of(a, b)
            scored = done is not None and self.state.evaluation(done) is not None
            if not scored:
                if limit is not None and count >= limit:
                    return works, True
                count += 1
            if done is not None:
                works.append(Work(pair, done, None if scored else self.score_job(done)))
                continue
            name, seq = reserved.get(tuple(sorted((a, b))), (None, None))
            if name is None:
                name, seq = f"g{gen}-{len(taken) + 1:02d}", pool + len(taken)
                taken.add(name)
                new.append((a, b, name, seq))
            works.append(Work(pair, name, self.merge_job(pair, gen, name), seq))
        self.state.reserve(new)
        return works, False

    def score_job(self, name: str) -> BreedJob:
        return BreedJob(name, self.state.models()[name].path, self.fitness,
                        device=self.cfg.device, threads=self.threads)

    def merge_job(self, pair: Pair, gen: int, name: str) -> BreedJob:
        rows, (a, b), pred = self.state.models(), (pair.a, pair.b), pair.prediction
        extra = {"generation": gen, "parent_kinship": {self.cfg.kinship.metric: self.kinship(a, b)}}
        if pred is not None:
            extra.update(predicted_gain=pred.gain, predicted_by=pred.model)
        return BreedJob(name, str(self.out / "models" / name), self.fitness,
                        self.recipe(rows[a].path, rows[b].path), self.cfg.seed, self.cfg.device,
                        (rows[a].lineage_id, rows[b].lineage_id), extra, threads=self.threads)

    def record_outcome(self, gen: int, w: Work, out: Outcome) -> None:
        """Commit a finished job: the child (if it was merged), then its evaluation."""
        a, b, name, job = w.pair.a, w.pair.b, w.name, w.job
        if job.recipe is not None:
            lin = lineage.read(job.path)
            self.state.add_model(name, job.path, lin.model.id, gen, (a, b), w.pair.origin,
                                 seq=w.seq)
            self.state.put_lineage(lin.model)
        self.state.add_evaluation(name, out.fitness, out.scores, out.seconds)
        self.sync_lineage(name)

    @staticmethod
    def report(w: Work, out: Outcome) -> None:
        """A finished job's progress lines (merged, scored)."""
        if w.job is not None and w.job.recipe is not None and out.merged:
            log.info("merged %s + %s -> %s", w.pair.a, w.pair.b, w.name)
        log.info("evaluated %s: %.4f", w.name, out.fitness)

    def recipe(self, a: str, b: str) -> dict:
        op = dict(self.cfg.operator)
        model_params = op.pop("model_parameters", {})
        parent_base = op["merge_method"] in REGISTRY and REGISTRY[op["merge_method"]].parent_base
        base = a if parent_base else self.cfg.base_model
        return {**op, "base_model": base,
                "models": [{"model": a, "parameters": model_params} if a != base
                           else {"model": a}, {"model": b, "parameters": model_params}]}

    def sync_lineage(self, name: str) -> None:
        """Write a model's scores and merge gain into its lineage.json and the database."""
        row = self.state.models()[name]
        f, scores = self.state.evaluation(name)
        scores = {**scores, "fitness": f}
        if row.origin == "pool":
            rec = lineage.of_parent(row.path, _local(row.path)).model
            self.state.put_lineage(rec.model_copy(update={"scores": scores, "generation": 0}))
            return
        gain = f - sum(self.state.evaluation(p)[0] for p in row.parents) / len(row.parents)
        rec = lineage.update(row.path, scores=scores, merge_gain=gain).model
        refresh_card(Path(row.path))  # the card shows the scores too
        self.state.put_lineage(rec)

    # the loop ---------------------------------------------------------------------------
    def run(self) -> tuple[str, list[dict]]:
        """Breed until a stop rule fires; returns (stop reason, per-generation records)."""
        pool = [n for n, r in self.state.models().items() if r.origin == "pool"]
        self.present = set(pool)
        log.info("scoring the pool: %d models (a line as each is evaluated)", len(pool))
        _, out_of_budget = self.measure(0, [Pair(name, None, "pool") for name in pool])
        if out_of_budget:
            return "budget", []
        top = self.top_k()
        gens = [self.record(0, top, [], [], None)]
        gen = 1
        while True:
            limit = self.cfg.budget.generations
            if limit is not None and gen > limit:
                return "generation limit", gens
            pairs, skipped = self.plan(gen, top)
            if not pairs:
                return ("no pair predicted to gain" if skipped else "nothing left to merge"), gens
            merged, out_of_budget = self.measure(gen, pairs)
            new_top = self.top_k()
            if merged:
                gens.append(self.record(gen, new_top, merged, pairs, skipped))
            if out_of_budget:
                return "budget", gens
            if set(new_top) == set(top):
                return "top-k unchanged", gens
            if self.converged(gens[-1].top_k_kinship):
                return "kinship threshold", gens
            top, gen = new_top, gen + 1

    def plan(self, gen: int, top: list[str]) -> tuple[list[Pair], int | None]:
        """This generation's pairs, in the order they are merged, and (select: predicted) how
        many candidates were skipped as predicted useless."""
        if self.cfg.select == "predicted":
            chosen, skipped = self.predicted(gen, top)
            return [Pair(*self.ordered(c.a, c.b), "predicted", p) for c, p in chosen], skipped
        pool = [n for n, r in self.state.models().items() if r.origin == "pool"]
        pairs = itertools.combinations(pool if gen == 1 else top, 2)
        merged = self.merged_pairs()
        planned = [Pair(*self.ordered(a, b), "top-k") for a, b in pairs
                   if tuple(sorted((a, b))) not in merged]
        if self.cfg.explore and gen > 1:
            partner = self.least_related(top[0], {(p.a, p.b) for p in planned})
            if partner is not None:
                planned.append(Pair(top[0], partner, "explore"))
        return planned, None

    def predicted(self, gen: int,
                  top: list[str]) -> tuple[list[tuple[PairStats, Prediction]], int]:
        """`select: predicted` (breed/predict.py) on this run: the pairs generation `gen`
        merges, best first, and how many candidates it skipped, from the fitness and kinship
        of the models present so far."""
        rows, fit = self.state.models(), {}
        for n in rows:  # creation order
            ev = self.state.evaluation(n) if n in self.present else None
            if ev is not None:
                fit[n] = ev[0]
        names = [n for n in fit if gen > 1 or rows[n].origin == "pool"]
        ancestors = {n: self.ancestors(n) for n in names} if gen > 1 else {}
        found = candidate_pairs(names, set(top) if gen > 1 else None, self.merged_pairs(),
                                ancestors)
        cands = [PairStats(x, y, fit[x], fit[y], self.kinship(x, y), (rows[x].seq, rows[y].seq))
                 for x, y in found]
        kids = [(self.kinship(*r.parents), fit[r.parents[0]], fit[r.parents[1]], fit[n])
                for n, r in rows.items() if r.parents and n in fit]
        return choose(cands, fit_gain(kids), self.cfg.kinship.metric, width(self.cfg.k))

    def converged(self, kin: float) -> bool:
        thr = self.cfg.kinship.threshold
        if thr is None:
            return False
        return kin <= thr if self.cfg.kinship.metric == "ed" else kin >= thr

    def record(self, gen: int, top: list[str], merged: list[tuple[Pair, str]],
               planned: list[Pair], skipped: int | None) -> Generation:
        explore = next(((p.a, p.b) for p in planned if p.origin == "explore"), None)
        data = Generation(
            gen, tuple(top), self.top_k_kinship(top), self.state.evaluation(top[0])[0], top[0],
            tuple(_merge_record(p, c) for p, c in merged), explore,  # type: ignore[arg-type]
            # models scored up to here (not the database total, which a resumed run's
            # replay of earlier generations would overstate)
            sum(self.state.evaluation(n) is not None for n in self.present), skipped)
        self.state.set_generation(gen, data.to_dict())
        log.info("generation %d: best %s = %.4f, top-k %s (kinship %.3f), %d evaluations",
                 gen, top[0], data.best, ", ".join(top), data.top_k_kinship, data.evaluations)
        if self.on_generation is not None:
            self.on_generation(data)
        return data


def _merge_record(p: Pair, child: str) -> Merge:
    pred = p.prediction
    return Merge((p.a, p.b), child, p.origin,  # type: ignore[arg-type]
                 None if pred is None else pred.gain, None if pred is None else pred.model)


def _local(ref: str) -> Path | None:
    p = Path(ref)
    return p if p.is_dir() else None
