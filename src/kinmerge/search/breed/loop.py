"""Iterative merging with kinship (Hu et al. 2024, Algorithm 1; docs/guides/breed.md, "The loop").

Generation 1 merges every pair of the pool; each later generation merges every pair of the
top-k not merged before and, with exploration, the best model with its least-related
relative. With `select: predicted` each generation instead merges the candidate pairs of
best predicted gain (breed/predict.py).

The controls a claim about kinship needs, each the same schedule with kinship taken out:
`partner: random` explores with a partner drawn at random among the same non-ancestors;
`select: random` merges as many of predicted's candidate pairs, drawn at random; `stall:
fill` is greedy that, instead of stopping when its top-k stops changing, spends the rest of
the budget on the untried pairs of best mean parent fitness. Random draws are seeded by the
run's seed and the generation, so they too are replayed.

Every decision is a function of cached fitness and kinship values and the seed (ties broken
by creation order), so a resumed run replays the same decisions and redoes no finished work.
The kinship measurements the decisions consulted are counted (`selection_pairs`): the cost
of kinship guidance beside the evaluations.
"""
from __future__ import annotations

import itertools
import logging
import math
import random
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
from kinmerge.search.breed.work import run_all
from kinmerge.search.jobs import ChildLineage, FitnessRef, Folder, Job, MergeInto, Result
from kinmerge.search.runners import InlineRunner, Runner
from kinmerge.lineage.publish import refresh_card

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """A pair a generation merges (or a pool model to score: b None), parents in recipe order."""

    a: str
    b: str | None
    origin: str  # "pool", "top-k", "explore", "predicted", "random" or "fill"
    prediction: Prediction | None = None  # select: predicted


@dataclass(frozen=True)
class Work:
    """One pair of a generation and what is left to do for it."""

    pair: Pair
    name: str  # the child (or the pool model)
    job: Job | None  # None: merged and scored before
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
    # pairs whose kinship a decision consulted (the cost of kinship guidance; the kinship of
    # merged parents and of the top-k, measured for the record, is not counted here)
    selection_pairs: set[tuple[str, str]] = field(default_factory=set)

    # measurements (cached) --------------------------------------------------------------
    def kinship(self, a: str, b: str, *, decide: bool = False) -> float:
        """The kinship of a and b (measured once ever); `decide`: a decision needs it."""
        metric = self.cfg.kinship.metric
        if decide:
            self.selection_pairs.add(tuple(sorted((a, b))))  # type: ignore[arg-type]
        cached = self.state.kinship(a, b, metric)
        if cached is None:
            m = self.state.models()
            cached = self.kinship_fn(m[a].path, m[b].path, self.cfg.base_model, metric)
            self.state.add_kinship(a, b, metric, cached)
        return cached

    def top_k_kinship(self, top: list[str], *, decide: bool = False) -> float:
        pairs = list(itertools.combinations(top, 2))
        return sum(self.kinship(a, b, decide=decide) for a, b in pairs) / max(len(pairs), 1)

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

    def partners(self, best: str, planned: set[tuple[str, str]]) -> list[str]:
        """Exploration's candidates for `best`: every evaluated model that is neither `best`
        nor one of its ancestors and was never paired with it (now or before), in creation
        order."""
        excluded = self.ancestors(best) | {best}
        merged = self.merged_pairs() | {tuple(sorted(p)) for p in planned}
        seq = {n: r.seq for n, r in self.state.models().items()}
        return sorted((n for n in self.ranked() if n not in excluded
                       and tuple(sorted((best, n))) not in merged), key=seq.__getitem__)

    def least_related(self, best: str, planned: set[tuple[str, str]]) -> str | None:
        """The model of lowest kinship to `best` among its `partners` (ties: the older)."""
        cands = self.partners(best, planned)
        if not cands:
            return None
        seq = {n: r.seq for n, r in self.state.models().items()}
        sign = -1.0 if self.cfg.kinship.metric == "ed" else 1.0  # ed: farthest = least related

        def key(n: str) -> tuple[bool, float, int]:
            k = self.kinship(best, n, decide=True)  # an undefined kinship (NaN) is never it
            return (math.isnan(k), 0.0 if math.isnan(k) else sign * k, seq[n])

        return min(cands, key=key)

    def random_partner(self, gen: int, best: str, planned: set[tuple[str, str]]) -> str | None:
        """One of `best`'s `partners`, drawn at random (seeded by the run's seed and `gen`):
        exploration's schedule with kinship taken out."""
        cands = self.partners(best, planned)
        return self.rng("partner", gen).choice(cands) if cands else None

    def rng(self, what: str, gen: int) -> random.Random:
        """The random stream of one decision: a function of the run's seed, the decision and
        the generation only, so a resumed run draws the same."""
        return random.Random(f"breed:{what}:{self.cfg.seed}:{gen}")

    # the controls' pair lists ---------------------------------------------------------------
    def random_pairs(self, gen: int, top: list[str]) -> list[tuple[str, str]]:
        """`select: random`: predicted's candidate pairs (generation 1: the pool's; later:
        with a top-k member, neither an ancestor of the other, not merged before), as many as
        predicted merges (C(k, 2) + 1), drawn at random; no kinship is measured."""
        names = self.evaluated(pool_only=gen == 1)
        ancestors = {n: self.ancestors(n) for n in names} if gen > 1 else {}
        found = candidate_pairs(names, set(top) if gen > 1 else None, self.merged_pairs(),
                                ancestors)
        return self.rng("pairs", gen).sample(found, min(width(self.cfg.k), len(found)))

    def fill_pairs(self, gen: int) -> list[tuple[str, str]]:
        """`stall: fill`: the C(k, 2) + 1 pairs of evaluated models never merged, of best
        mean parent fitness (ties: the older pair), as greedy would rank them."""
        names = self.evaluated()
        fit = {n: self.state.evaluation(n)[0] for n in names}  # type: ignore[index]
        order = {n: i for i, n in enumerate(names)}
        found = candidate_pairs(names, None, self.merged_pairs(), {})
        found.sort(key=lambda p: (-(fit[p[0]] + fit[p[1]]), order[p[0]], order[p[1]]))
        return found[: width(self.cfg.k)]

    def evaluated(self, pool_only: bool = False) -> list[str]:
        """The evaluated models present, in creation order."""
        rows = self.state.models()
        return [n for n, r in rows.items() if n in self.present
                and self.state.evaluation(n) is not None
                and (not pool_only or r.origin == "pool")]

    # merging and scoring (planned here, run by the runner) -------------------------------
    def measure(self, gen: int, pairs: list[Pair]) -> tuple[list[tuple[Pair, str]], bool]:
        """Merge (once ever) and score (once ever) the children of `pairs`, in parallel on the
        runner; returns (pair, child) of each, and whether the budget cut the list short.
        Pool models are scored with Pair(name, None, "pool")."""
        works, out_of_budget = self.plan_work(gen, pairs)
        jobs = {w.name: w for w in works if w.job is not None}
        run_all(self.runner, [w.job for w in jobs.values()],
                lambda job, out: self.record_outcome(gen, jobs[job.key], out),
                lambda job, out: self.report(jobs[job.key], out))  # in plan order
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

    def score_job(self, name: str) -> Job:
        return Job(name, Folder(self.state.models()[name].path), self.fitness,
                   device=self.cfg.device, threads=self.threads, finite=True)

    def merge_job(self, pair: Pair, gen: int, name: str) -> Job:
        rows, (a, b), pred = self.state.models(), (pair.a, pair.b), pair.prediction
        extra = ChildLineage(gen, ((self.cfg.kinship.metric, self.kinship(a, b)),),
                             None if pred is None else pred.gain,
                             None if pred is None else pred.model)
        child = MergeInto(str(self.out / "models" / name), self.recipe(rows[a].path, rows[b].path),
                          self.cfg.seed, (rows[a].lineage_id, rows[b].lineage_id), extra)
        return Job(name, child, self.fitness, device=self.cfg.device, threads=self.threads,
                   finite=True)

    def record_outcome(self, gen: int, w: Work, out: Result) -> None:
        """Commit a finished job: the child (if it was merged), then its evaluation."""
        a, b, name, job = w.pair.a, w.pair.b, w.name, w.job
        if job.merges:
            lin = lineage.read(job.path)
            self.state.add_model(name, job.path, lin.model.id, gen, (a, b), w.pair.origin,
                                 seq=w.seq)
            self.state.put_lineage(lin.model)
        # the evaluation's seconds count building the module, as they always have here
        self.state.add_evaluation(name, out.fitness, out.scores,
                                  out.load_seconds + out.eval_seconds)
        self.sync_lineage(name)

    @staticmethod
    def report(w: Work, out: Result) -> None:
        """A finished job's progress lines (merged, scored)."""
        if w.job is not None and w.job.merges and out.merged:
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
            if set(new_top) == set(top) and self.cfg.stall == "stop":
                return "top-k unchanged", gens
            if self.converged(new_top):
                return "kinship threshold", gens
            top, gen = new_top, gen + 1

    def plan(self, gen: int, top: list[str]) -> tuple[list[Pair], int | None]:
        """This generation's pairs, in the order they are merged, and (select: predicted) how
        many candidates were skipped as predicted useless."""
        if self.cfg.select == "predicted":
            chosen, skipped = self.predicted(gen, top)
            return [Pair(*self.ordered(c.a, c.b), "predicted", p) for c, p in chosen], skipped
        if self.cfg.select == "random":
            return [Pair(*self.ordered(a, b), "random") for a, b in self.random_pairs(gen, top)
                    ], None
        pool = [n for n, r in self.state.models().items() if r.origin == "pool"]
        pairs = itertools.combinations(pool if gen == 1 else top, 2)
        merged = self.merged_pairs()
        planned = [Pair(*self.ordered(a, b), "top-k") for a, b in pairs
                   if tuple(sorted((a, b))) not in merged]
        if not planned and self.cfg.stall == "fill":  # the top-k has stalled: fill
            return [Pair(*self.ordered(a, b), "fill") for a, b in self.fill_pairs(gen)], None
        if self.cfg.explore and gen > 1:
            taken = {(p.a, p.b) for p in planned}
            partner = (self.random_partner(gen, top[0], taken) if self.cfg.partner == "random"
                       else self.least_related(top[0], taken))
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
        cands = [PairStats(x, y, fit[x], fit[y], self.kinship(x, y, decide=True),
                           (rows[x].seq, rows[y].seq)) for x, y in found]
        kids = [(self.kinship(*r.parents, decide=True), fit[r.parents[0]], fit[r.parents[1]],
                 fit[n]) for n, r in rows.items() if r.parents and n in fit]
        return choose(cands, fit_gain(kids), self.cfg.kinship.metric, width(self.cfg.k))

    def converged(self, top: list[str]) -> bool:
        """Whether the top-k's mean pairwise kinship reached the threshold (a decision that
        consults kinship only when a threshold is set)."""
        thr = self.cfg.kinship.threshold
        if thr is None:
            return False
        kin = self.top_k_kinship(top, decide=True)
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
