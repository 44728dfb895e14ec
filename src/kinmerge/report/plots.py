"""The paper's figures for the user's own run (Hu et al. 2024, Figs. 2-4):
fitness per generation, mean top-k kinship per generation, kinship vs |merge gain|.

Every function takes plain numbers and writes one image; `write_run_plots` finds the numbers
in a run directory (summary.json, history.csv, lineage).
"""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Sequence

from matplotlib.ticker import MaxNLocator

from kinmerge.figures import pyplot, save

log = logging.getLogger(__name__)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson r, or None when it is undefined (fewer than 3 points, or a constant side)."""
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def fitness_per_generation(gens: list[dict], children: list[tuple[int, float]],
                           out: Path, title: str = "fitness per generation") -> Path:
    """Best fitness so far per generation (line) over every model's fitness (dots)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if children:
        ax.scatter([g for g, _ in children], [f for _, f in children], s=14, alpha=0.5,
                   color="#7f7f7f", label="each model")
    ax.plot([g["generation"] for g in gens], [g["best"] for g in gens], "o-",
            color="#1f77b4", label="best (top-1)")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
    ax.set_ylabel("fitness")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out)


def kinship_per_generation(gens: list[dict], out: Path, metric: str = "pcc",
                           threshold: float | None = None) -> Path:
    """Mean pairwise kinship of the top-k after each generation (the saturation signal)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([g["generation"] for g in gens], [g["top_k_kinship"] for g in gens], "s-",
            color="#d62728", label=f"top-k mean {metric}")
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="#555555", lw=1, label=f"threshold {threshold}")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
    ax.set_ylabel(f"top-k kinship ({metric})")
    ax.set_title("top-k kinship per generation")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out)


def kinship_vs_gain(points: list[tuple[float, float]], out: Path, metric: str = "pcc") -> Path:
    """Parent kinship vs |merge gain| of every child, with Pearson r in the title."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [k for k, _ in points]
    ys = [abs(g) for _, g in points]
    ax.scatter(xs, ys, s=22, color="#2ca02c", alpha=0.8)
    r = pearson(xs, ys)
    if r is not None and len(set(xs)) > 1:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        lo, hi = min(xs), max(xs)
        ax.plot([lo, hi], [my + slope * (lo - mx), my + slope * (hi - mx)], "--",
                color="#555555", lw=1)
    rtext = "n/a" if r is None else f"{r:+.3f}"
    ax.set_title(f"kinship vs |merge gain| (Pearson r = {rtext}, n = {len(points)})")
    ax.set_xlabel(f"kinship of the parents ({metric})")
    ax.set_ylabel("|merge gain|")
    ax.grid(alpha=0.3)
    return save(fig, out)




def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_run_plots(run: str | Path) -> list[Path]:
    """The figures of a breed run (summary.json with per-generation top-k kinship) written
    into the run folder; other runs bring their own images and get only the family tree."""
    run = Path(run)
    written: list[Path] = []
    summary_f = run / "summary.json"
    summary = json.loads(summary_f.read_text()) if summary_f.is_file() else {}
    gens = summary.get("generations") or []
    if gens and "top_k_kinship" in gens[0]:
        rows = read_history(run / "history.csv")
        children = [(int(r["generation"]), float(r["fitness"])) for r in rows if r["fitness"]]
        points = [(float(r["parent_kinship"]), float(r["merge_gain"])) for r in rows
                  if r.get("parent_kinship") and r.get("merge_gain")]
        mode = ("pairs by predicted gain" if summary.get("select") == "predicted"
                else "with exploration" if summary.get("explore") else "plain greedy")
        metric = summary.get("metric", "pcc")
        written.append(fitness_per_generation(gens, children, run / "fitness.png",
                                              f"fitness per generation ({mode})"))
        written.append(kinship_per_generation(gens, run / "topk_kinship.png", metric,
                                              _threshold(run)))
        written.append(kinship_vs_gain(points, run / "kinship_vs_gain.png", metric))
    from kinmerge.lineage.graph import collect
    from kinmerge.lineage.tree import draw

    records = collect(run)
    if any(r.parents for r in records.values()):
        written.append(draw(records, run / "family.png"))
    log.info("plots written: %s", ", ".join(p.name for p in written) or "none")
    return written


def _threshold(run: Path) -> float | None:
    cfg = run / "breed.yml"
    if not cfg.is_file():
        return None
    import yaml

    return ((yaml.safe_load(cfg.read_text()) or {}).get("kinship") or {}).get("threshold")
