"""The kinship paper's experiment on a zoo family (`benchmarks/breed_science.py` runs it).

For each seed (the zoo's training seed, so the pool, its data and the merge seed all change):
breed the family's experts three ways at the same evaluation budget -- plain greedy top-k
merging, the paper's exploration (best model x its least related), and pair selection by
predicted gain (`select: predicted`) -- and record the best score, the evaluations it took to
reach it, the generation where the best stopped improving, and the top-k kinship of every
generation. Over every child of every run: how parent kinship (cs, pcc, ed) correlates with the
merge gain and with |gain|, with bootstrap confidence intervals.

Reading runs and computing statistics are separate from running them, so the tests check the
statistics on hand-made runs.
"""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

from kinmerge.report.plots import pearson as report_pearson
from kinmerge.zoo.manifest import read_manifest

STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"explore": False},
    "explore": {"explore": True},
    "predicted": {"explore": False, "select": "predicted"},
}
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


def read_run(out: Path) -> dict:
    """What one breed run reached: from its summary.json and history.csv."""
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "history.csv").open()))
    scored = [r for r in rows if r["fitness"] != ""]
    gens = summary["generations"]
    children = [{"child": r["name"], "parents": r["parents"].split(" + "),
                 "paths": [next(x["path"] for x in rows if x["name"] == p)
                           for p in r["parents"].split(" + ")],
                 "fitness": float(r["fitness"]), "gain": float(r["merge_gain"]),
                 "origin": r["origin"], "generation": int(r["generation"])}
                for r in scored if r["parents"]]
    return {"best": summary["best_score"], "best_model": summary["best_model"],
            "best_path": summary["best_path"], "evaluations": summary["evaluations"],
            "stop_reason": summary["stop_reason"],
            "evals_to_best": evals_to_best([float(r["fitness"]) for r in scored]),
            "trace": [float(r["fitness"]) for r in scored],  # fitness in evaluation order
            "stall_generation": stall_generation([g["best"] for g in gens]),
            "generations": [{"generation": g["generation"], "best": g["best"],
                             "top_k_kinship": g["top_k_kinship"],
                             "evaluations": g["evaluations"]} for g in gens],
            "children": children}


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
    """Every child once: the same parents (by path) in the same seed make the same model
    (merges are deterministic), whichever strategy made it."""
    seen, out = set(), []
    for run in runs:
        for c in run["children"]:
            key = (run["seed"], *sorted(_ident(run, p) for p in c["paths"]))
            if key not in seen:
                seen.add(key)
                out.append({**c, "seed": run["seed"]})
    return out


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


def compare(runs: list[dict], a: str, b: str) -> dict:
    """Strategy `a` against `b`, seed by seed: wins, ties, mean and spread of the difference
    of best scores, and of the evaluations each took to reach its best."""
    by = {(r["seed"], r["strategy"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs if (r["seed"], a) in by and (r["seed"], b) in by})
    diff = [by[s, a]["best"] - by[s, b]["best"] for s in seeds]
    evals = [by[s, a]["evals_to_best"] - by[s, b]["evals_to_best"] for s in seeds]
    # evaluations each needed to reach the lower of the two bests (the score both reached)
    common = [(evals_to_reach(by[s, a]["trace"], t), evals_to_reach(by[s, b]["trace"], t))
              for s in seeds for t in [min(by[s, a]["best"], by[s, b]["best"])]]
    return {"seeds": seeds, "wins": sum(d > 0 for d in diff), "ties": sum(d == 0 for d in diff),
            "losses": sum(d < 0 for d in diff), "diff": diff, "mean_diff": _mean(diff),
            "sd_diff": _sd(diff), "evals_diff": evals, "evals_to_common": common}


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def _sd(v: list[float]) -> float:
    if len(v) < 2:
        return float("nan")
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
