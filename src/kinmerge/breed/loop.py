"""Iterative merging with kinship (Hu et al. 2024, Algorithm 1; semantics.md section 4).

Generation 1 merges every pair of the pool; each later generation merges every pair of the
top-k not merged before and, with exploration, the best model with its least-related
relative. Every decision is a function of cached fitness and kinship values (ties broken by
creation order), so a resumed run replays the same decisions and redoes no finished work.
"""
from __future__ import annotations

import itertools
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kinmerge import lineage
from kinmerge.breed.config import PARENT_BASED, BreedConfig
from kinmerge.breed.fitness import Fitness, KinshipFn
from kinmerge.evaluate.tasks import weighted_mean
from kinmerge.breed.state import BreedState
from kinmerge.io.atomic import remove_leftovers
from kinmerge.merge import merge
from kinmerge.publish import refresh_card

log = logging.getLogger(__name__)


class BudgetExhausted(Exception):
    """The next evaluation would exceed the evaluation budget."""


@dataclass
class Breeder:
    cfg: BreedConfig
    out: Path
    state: BreedState
    fitness: Fitness
    kinship_fn: KinshipFn
    weights: dict[str, float] = field(default_factory=dict)
    on_generation: Callable[[dict], None] | None = None
    # the models of M at this point of the loop: a resumed run replays from the pool, so
    # models made later by the killed run must stay invisible until the replay reaches them
    present: set[str] = field(default_factory=set)

    # measurements (cached) --------------------------------------------------------------
    def score(self, name: str) -> float:
        """Fitness of a model of the run, evaluated once ever (counts against the budget)."""
        cached = self.state.evaluation(name)
        if cached is not None:
            return cached[0]
        self.check_budget()
        row = self.state.models()[name]
        t0 = time.perf_counter()
        scores = self.fitness(Path(row.path))
        f = weighted_mean(scores, self.weights)
        self.state.add_evaluation(name, f, scores, time.perf_counter() - t0)
        log.info("evaluated %s: %.4f", name, f)
        self.sync_lineage(name)
        return f

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

    # merging ----------------------------------------------------------------------------
    def child(self, a: str, b: str, gen: int, origin: str) -> str:
        """Merge a and b (once ever) into OUT/models/<name>; returns the child's name."""
        done = self.state.child_of(a, b)
        if done is not None:
            self.present.add(done)
            return done
        rows = self.state.models()
        name = f"g{gen}-{sum(r.origin != 'pool' for r in rows.values()) + 1:02d}"
        path = self.out / "models" / name
        kin = self.kinship(a, b)
        parents = [rows[a], rows[b]]
        lin = lineage.read(path) if path.is_dir() else None
        if lin is None or not {p.lineage_id for p in parents} <= set(lin.model.parents):
            # not there, or a stale folder from another run: (re)merge
            _clean_partial(path)
            merge(self.recipe(rows[a].path, rows[b].path), path, seed=self.cfg.seed,
                  overwrite=True, lineage={"generation": gen,
                                           "parent_kinship": {self.cfg.kinship.metric: kin}})
            lin = lineage.read(path)
            log.info("merged %s + %s -> %s (kinship %.4f)", a, b, name, kin)
        self.state.add_model(name, str(path), lin.model.id, gen, (a, b), origin)
        self.state.put_lineage(lin.model)
        self.present.add(name)
        return name

    def recipe(self, a: str, b: str) -> dict:
        op = dict(self.cfg.operator)
        model_params = op.pop("model_parameters", {})
        base = a if op["merge_method"] in PARENT_BASED else self.cfg.base_model
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
        try:
            for name in pool:
                self.score(name)
        except BudgetExhausted:
            return "budget", []
        top = self.top_k()
        gens = [self.record(0, top, [], None)]
        gen = 1
        while True:
            limit = self.cfg.budget.generations
            if limit is not None and gen > limit:
                return "generation limit", gens
            planned, explore = self.plan(gen, top)
            if not planned and explore is None:
                return "nothing left to merge", gens
            merged, out_of_budget = self.breed(gen, planned, explore)
            new_top = self.top_k()
            if merged:
                gens.append(self.record(gen, new_top, merged, explore))
            if out_of_budget:
                return "budget", gens
            if set(new_top) == set(top):
                return "top-k unchanged", gens
            if self.converged(gens[-1]["top_k_kinship"]):
                return "kinship threshold", gens
            top, gen = new_top, gen + 1

    def plan(self, gen: int, top: list[str]) -> tuple[list[tuple[str, str]], tuple | None]:
        pool = [n for n, r in self.state.models().items() if r.origin == "pool"]
        pairs = itertools.combinations(pool if gen == 1 else top, 2)
        merged = self.merged_pairs()
        planned = [self.ordered(a, b) for a, b in pairs if tuple(sorted((a, b))) not in merged]
        explore = None
        if self.cfg.explore and gen > 1:
            partner = self.least_related(top[0], set(planned))
            explore = (top[0], partner) if partner is not None else None
        return planned, explore

    def breed(self, gen: int, planned: list, explore: tuple | None) -> tuple[list, bool]:
        """Merge and score this generation's pairs; stops early when the budget runs out."""
        merged: list[tuple] = []
        jobs = [(a, b, "top-k") for a, b in planned]
        if explore is not None:
            jobs.append((*explore, "explore"))
        for a, b, origin in jobs:
            done = self.state.child_of(a, b)
            try:
                if done is None or self.state.evaluation(done) is None:
                    self.check_budget()  # never merge a child that cannot be scored
                child = self.child(a, b, gen, origin)
                self.score(child)
            except BudgetExhausted:
                return merged, True
            merged.append((a, b, child, origin))
        return merged, False

    def check_budget(self) -> None:
        limit = self.cfg.budget.evaluations
        if limit is not None and self.state.evaluation_count() >= limit:
            raise BudgetExhausted

    def converged(self, kin: float) -> bool:
        thr = self.cfg.kinship.threshold
        if thr is None:
            return False
        return kin <= thr if self.cfg.kinship.metric == "ed" else kin >= thr

    def record(self, gen: int, top: list[str], merged: list[tuple],
               explore: tuple | None) -> dict:
        data = {"generation": gen, "top_k": top, "top_k_kinship": self.top_k_kinship(top),
                "best": self.state.evaluation(top[0])[0], "best_model": top[0],
                "merged": [{"parents": [a, b], "child": c, "origin": o}
                           for a, b, c, o in merged],
                "explored": list(explore) if explore else None,
                # models scored up to here (not the database total, which a resumed run's
                # replay of earlier generations would overstate)
                "evaluations": sum(self.state.evaluation(n) is not None for n in self.present)}
        self.state.set_generation(gen, data)
        log.info("generation %d: best %s = %.4f, top-k %s (kinship %.3f), %d evaluations",
                 gen, top[0], data["best"], ", ".join(top), data["top_k_kinship"],
                 data["evaluations"])
        if self.on_generation is not None:
            self.on_generation(data)
        return data


def _local(ref: str) -> Path | None:
    p = Path(ref)
    return p if p.is_dir() else None


def _clean_partial(path: Path) -> None:
    """Remove what a killed merge left: its temporary folders and a stale output."""
    remove_leftovers(path)
    if path.exists():
        shutil.rmtree(path)
