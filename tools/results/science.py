"""The kinship paper's experiment on a zoo family (`benchmarks/breed_science.py` runs it).

For each seed (the zoo's training seed, so the pool, its data and the merge seed all change):
breed the family's experts six ways at the same evaluation budget -- plain greedy top-k
merging, the paper's exploration (best model x its least related), pair selection by
predicted gain (`select: predicted`), and their controls: greedy that spends its whole budget
(`stall: fill`), exploration with a random partner (`partner: random`), and predicted's width
of random pairs (`select: random`) -- and record the best score, the evaluations it took to
reach it, the anytime trace (best so far after each evaluation), the kinship measurements
its choices read, and the top-k kinship of every generation. Over every distinct child (by
content hash) of every run: how parent kinship (cs, pcc, ed) correlates with the merge gain
and with |gain| -- per seed, within related and unrelated parent pairs, the pool-pair census
apart -- with intervals that respect shared parents (science_stats.py).

Reading runs and computing statistics are separate from running them, so the tests check the
statistics on hand-made runs.
"""
from __future__ import annotations

import csv
import hashlib
import math
import random
from pathlib import Path
from typing import Any

from kinmerge.report.plots import pearson as report_pearson
from kinmerge.search.breed.summary import read_summary
from kinmerge.zoo.manifest import read_manifest

STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"explore": False},
    "explore": {"explore": True},
    "predicted": {"explore": False, "select": "predicted"},
    "greedy_full": {"explore": False, "stall": "fill"},
    "random_partner": {"explore": True, "partner": "random"},
    "random_pairs": {"explore": False, "select": "random"},
}
# the pre-registered comparisons (docs/breed-preregistration.md): each strategy against the
# control that takes kinship out of it, and against greedy at its whole budget
PAIRS = [("explore", "random_partner"), ("predicted", "random_pairs"),
         ("explore", "greedy_full"), ("predicted", "greedy_full"), ("explore", "greedy"),
         ("predicted", "greedy"), ("greedy_full", "greedy"), ("predicted", "explore")]
METRICS = ("cs", "pcc", "ed")


def breed_config(root: Path, seed: int, operator: dict, budget: int, k: int = 3,
                 max_examples: int = 100) -> dict:
    """breed.yml for the experts of the zoo at `root` (fitness: mean exact match over its
    skills on the search split; the held-out split is scored separately)."""
    manifest = read_manifest(root)
    experts = list(manifest.experts)
    tasks = [{"name": s, "search": str(root / f["search"]), "heldout": str(root / f["heldout"]),
              "options": {"max_examples": max_examples}}
             for s, f in manifest.skills.items()
             if s in {m.skill for m in manifest.models.values()}]
    return {"pool": [str(root / e) for e in experts], "base_model": str(root / "base"),
            "operator": operator, "fitness": {"tasks": tasks}, "k": k,
            "kinship": {"metric": "pcc", "threshold": None},
            "budget": {"evaluations": budget, "generations": None}, "seed": seed}


def read_run(out: Path, pool_skills: dict[str, str] | None = None) -> dict:
    """What one breed run reached: from its summary.json and history.csv. `pool_skills`
    ({pool model path: skill}) adds each child's parents' skill sets."""
    summary = read_summary(out)  # typed: a run before the kinship counts reads them as 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    scored = [r for r in rows if r["fitness"] != ""]
    gens = summary.generations
    path = {x["name"]: x["path"] for x in rows}
    origin = {x["name"]: x["origin"] for x in rows}
    children = [{"child": r["name"], "path": r["path"], "parents": r["parents"].split(" + "),
                 "paths": [path[p] for p in r["parents"].split(" + ")],
                 "pool_pair": all(origin[p] == "pool" for p in r["parents"].split(" + ")),
                 "fitness": float(r["fitness"]), "gain": float(r["merge_gain"]),
                 "origin": r["origin"], "generation": int(r["generation"])}
                for r in scored if r["parents"]]
    if pool_skills is not None:
        skills = skill_sets(rows, pool_skills)
        for c in children:
            c["parent_skills"] = [sorted(skills[p]) for p in c["parents"]]
            c["related"] = bool(skills[c["parents"][0]] & skills[c["parents"][1]])
    fitness = [float(r["fitness"]) for r in scored]
    # best so far after each evaluation (summary.json's, where the run wrote one)
    trace = list(summary.trace) or [max(fitness[: i + 1]) for i in range(len(fitness))]
    return {"best": summary.best_score, "best_model": summary.best_model,
            "best_path": summary.best_path, "evaluations": summary.evaluations,
            "stop_reason": summary.stop_reason,
            "evals_to_best": evals_to_best(fitness),
            "trace": trace,
            "kinship_measured": summary.kinship_measured,
            "kinship_for_selection": summary.kinship_for_selection,
            "stall_generation": stall_generation([g.best for g in gens]),
            "generations": [{"generation": g.generation, "best": g.best,
                             "top_k_kinship": g.top_k_kinship,
                             "evaluations": g.evaluations} for g in gens],
            "children": children}


def skill_sets(rows: list[dict], pool_skills: dict[str, str]) -> dict[str, set[str]]:
    """Every model's skills: a pool model's own, a child's its parents' together."""
    out: dict[str, set[str]] = {}
    for r in rows:  # creation order: parents come first
        out[r["name"]] = ({pool_skills[r["path"]]} if not r["parents"] else
                          set().union(*(out[p] for p in r["parents"].split(" + "))))
    return out


def model_sha256(folder: str | Path) -> str:
    """The content hash of a model folder's weights (model.safetensors)."""
    h = hashlib.sha256()
    with open(Path(folder) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_hashes(runs: list[dict]) -> None:
    """Give every child the content hash of its weights and of its parents' (merges are
    deterministic: two strategies that make the same merge make the same bytes)."""
    cache: dict[str, str] = {}

    def sha(p: str) -> str:
        if p not in cache:
            cache[p] = model_sha256(p)
        return cache[p]

    for run in runs:
        for c in run["children"]:
            c["sha256"] = sha(c["path"])
            c["parent_sha256"] = [sha(p) for p in c["paths"]]


def evals_to_best(fitness_in_order: list[float]) -> int:
    """How many evaluations (in the order they were made) it took to first reach the best."""
    return evals_to_reach(fitness_in_order, max(fitness_in_order))  # type: ignore[return-value]


def evals_to_reach(fitness_in_order: list[float], target: float) -> int | None:
    """Evaluations until a model scored `target` or more (within 1e-6: history.csv rounds to
    6 decimals, summary.json does not); None if none did."""
    return next((i + 1 for i, f in enumerate(fitness_in_order) if f >= target - 1e-6), None)


def stall_generation(best_per_generation: list[float]) -> int | None:
    """The first generation (>= 1) whose best is no better than the one before; None when
    every generation improved."""
    for g in range(1, len(best_per_generation)):
        if best_per_generation[g] <= best_per_generation[g - 1]:
            return g
    return None


def pearson(x: list[float], y: list[float]) -> float:
    """Pearson r (the breed report's), NaN where it is undefined."""
    r = report_pearson(x, y)
    return float("nan") if r is None else r


def correlate(x: list[float], y: list[float], *, boot: int = 2000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Pearson r of (x, y) with a percentile bootstrap interval (pairs resampled)."""
    rng = random.Random(seed)
    n = len(x)
    rs = []
    for _ in range(boot):
        idx = [rng.randrange(n) for _ in range(n)]
        r = pearson([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(r):
            rs.append(r)
    rs.sort()
    lo = rs[int((1 - level) / 2 * len(rs))] if rs else float("nan")
    hi = rs[min(len(rs) - 1, int((1 + level) / 2 * len(rs)))] if rs else float("nan")
    return {"r": pearson(x, y), "lo": lo, "hi": hi, "n": n}


def unique_children(runs: list[dict]) -> list[dict]:
    """Every distinct model once, with the strategies that made it: by content hash where
    the children carry one (`add_hashes`), else by its parents (a pool model is the same
    across strategies; a child is its own run's)."""
    seen: dict[tuple, dict] = {}
    for run in runs:
        for c in run["children"]:
            key = ((run["seed"], c["sha256"]) if "sha256" in c else
                   (run["seed"], *sorted(_ident(run, p) for p in c["paths"])))
            if key not in seen:
                seen[key] = {**c, "seed": run["seed"], "strategies": []}
            seen[key]["strategies"].append(run["strategy"])
    return list(seen.values())


def _ident(run: dict, path: str) -> str:
    """A pool model is the same across strategies; a child is its run's own."""
    return path if "/models/" not in path else f"{run['strategy']}:{path}"


def kinship_vs_gain(children: list[dict]) -> dict:
    """{metric: {"gain": corr, "abs_gain": corr}} over children holding `kinship[metric]`."""
    out = {}
    for m in METRICS:
        xs = [c["kinship"][m] for c in children]
        out[m] = {"gain": correlate(xs, [c["gain"] for c in children]),
                  "abs_gain": correlate(xs, [abs(c["gain"]) for c in children])}
    return out


def honest_correlation(children: list[dict], *, perms: int = 5000, boot: int = 2000) -> dict:
    """Kinship against gain as a skeptic reads it, over distinct children: per metric and
    target (gain, |gain|): r over all with the permutation p (kinship shuffled among the
    parent pairs within each seed), the parent-bootstrap interval and, for contrast, the
    pair bootstrap's; r per seed with its spread; r within related and unrelated parent
    pairs (sharing a skill or not); the pool-pair census (generation 1, every pair of the
    pool: no strategy chose them) apart from the later children (chosen). And the control:
    r of the related indicator alone with the gain."""
    from tools.results import science_stats as T

    def block(sub: list[dict], x_of, y_of) -> dict:
        if len(sub) < 3:
            return {"r": float("nan"), "n": len(sub)}
        x, y = [x_of(c) for c in sub], [y_of(c) for c in sub]
        seeds = [c["seed"] for c in sub]
        parents = [tuple(c.get("parent_sha256") or c["paths"]) for c in sub]
        perm = T.permutation_r(x, y, seeds, perms=perms)
        par = T.parent_bootstrap(x, y, parents, seeds, boot=boot)
        pair = correlate(x, y, boot=boot)
        return {"r": perm["r"], "n": len(sub), "perm_p": perm["p"], "parent_lo": par["lo"],
                "parent_hi": par["hi"], "pair_lo": pair["lo"], "pair_hi": pair["hi"],
                "per_seed": T.per_stratum_r(x, y, seeds)}

    grouped = all("related" in c for c in children)
    subsets = {"all": children, "census": [c for c in children if c["pool_pair"]],
               "later": [c for c in children if not c["pool_pair"]]}
    if grouped:
        subsets["related"] = [c for c in children if c["related"]]
        subsets["unrelated"] = [c for c in children if not c["related"]]
    out: dict[str, Any] = {}
    for m in METRICS:
        out[m] = {t: {name: block(sub, lambda c: c["kinship"][m], f)
                      for name, sub in subsets.items()}
                  for t, f in (("gain", lambda c: c["gain"]),
                               ("abs_gain", lambda c: abs(c["gain"])))}
    if grouped:
        out["related_indicator"] = {
            t: block(children, lambda c: float(c["related"]), f)
            for t, f in (("gain", lambda c: c["gain"]), ("abs_gain", lambda c: abs(c["gain"])))}
    return out


def best_at(run: dict, t: int) -> float:
    """The run's best search score after `t` evaluations (a run that stopped earlier keeps
    its last best: it could not use more)."""
    trace = run["trace"]
    return trace[min(t, len(trace)) - 1]


def anytime(runs: list[dict], a: str, b: str, budget: int, seeds: list | None = None) -> dict:
    """`a` minus `b` in best search score so far at every budget t = 1..budget, per seed,
    and its mean, min and max over seeds (the band) and wins / losses."""
    by = {(r["seed"], r["strategy"]): r for r in runs}
    seeds = seeds if seeds is not None else sorted(
        {r["seed"] for r in runs if (r["seed"], a) in by and (r["seed"], b) in by})
    per = {s: [diff(best_at(by[s, a], t), best_at(by[s, b], t)) for t in range(1, budget + 1)]
           for s in seeds}
    cols = list(zip(*per.values())) if per else []
    return {"seeds": seeds, "per_seed": {str(s): v for s, v in per.items()},
            "mean": [_mean(list(c)) for c in cols], "lo": [min(c) for c in cols],
            "hi": [max(c) for c in cols], "wins": [sum(d > 0 for d in c) for c in cols],
            "losses": [sum(d < 0 for d in c) for c in cols]}


def curve(runs: list[dict], strategy: str, budget: int, seeds: list | None = None) -> dict:
    """Best search score so far at every budget: mean, min and max over seeds."""
    rs = [r for r in runs if r["strategy"] == strategy and (seeds is None or r["seed"] in seeds)]
    cols = [[best_at(r, t) for r in rs] for t in range(1, budget + 1)] if rs else []
    return {"mean": [_mean(c) for c in cols], "lo": [min(c) for c in cols],
            "hi": [max(c) for c in cols], "seeds": sorted(r["seed"] for r in rs)}


def compare(runs: list[dict], a: str, b: str, seeds: list | None = None) -> dict:
    """Strategy `a` against `b`, seed by seed: wins, ties, mean and spread of the difference
    of best scores, and of the evaluations each took to reach its best; with the
    pre-registered paired statistics (science_stats.paired) of the held-out score of each
    run's best (the primary endpoint) and of its search score, at the full budget."""
    from tools.results import science_stats as T

    by = {(r["seed"], r["strategy"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs if (r["seed"], a) in by and (r["seed"], b) in by
                    and (seeds is None or r["seed"] in seeds)})
    diffs = [diff(by[s, a]["best"], by[s, b]["best"]) for s in seeds]
    evals = [by[s, a]["evals_to_best"] - by[s, b]["evals_to_best"] for s in seeds]
    # evaluations each needed to reach the lower of the two bests (the score both reached)
    common = [(evals_to_reach(by[s, a]["trace"], t), evals_to_reach(by[s, b]["trace"], t))
              for s in seeds for t in [min(by[s, a]["best"], by[s, b]["best"])]]
    out = {"seeds": seeds, "wins": sum(d > 0 for d in diffs),
           "ties": sum(d == 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
           "diff": diffs, "mean_diff": _mean(diffs), "sd_diff": _sd(diffs), "evals_diff": evals,
           "evals_to_common": common}
    if seeds and all(by[s, x].get("best_heldout") is not None for s in seeds for x in (a, b)):
        out["heldout"] = T.paired([diff(by[s, a]["best_heldout"], by[s, b]["best_heldout"])
                                   for s in seeds])
        out["search"] = T.paired(diffs)
    return out


def diff(a: float, b: float) -> float:
    """a - b to 9 decimals: scores are means of exact-match fractions, and the same score
    summed in another order differs in the last bits (0.8933333333333334 against
    0.8933333333333332 on the pilot): that is a tie, not a win."""
    return round(a - b, 9) + 0.0  # + 0.0: no -0.0


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def _sd(v: list[float]) -> float:
    if len(v) < 2:
        return float("nan")
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
