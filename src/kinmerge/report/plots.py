"""The paper's figures for the user's own run (Hu et al. 2024, Figs. 2-4):
fitness per generation, mean top-k kinship per generation, kinship vs |merge gain|.

Every function takes plain numbers or the typed summary and writes one image; `breed` hands
`run_figures` what it has in memory, and `write_run_plots` reads the same from a run
directory (summary.json, history.csv, breed.yml, lineage) for `kinmerge report`.
"""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from matplotlib.ticker import MaxNLocator

from kinmerge.figures import pyplot, save

if TYPE_CHECKING:
    from kinmerge.lineage.record import LineageRecord
    from kinmerge.io.breed_summary import BreedSummary, Generation

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


def fitness_per_generation(gens: Sequence[Generation], children: list[tuple[int, float]],
                           out: Path, title: str = "fitness per generation") -> Path:
    """Best fitness so far per generation (line) over every model's fitness (dots)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if children:
        ax.scatter([g for g, _ in children], [f for _, f in children], s=14, alpha=0.5,
                   color="#7f7f7f", label="each model")
    ax.plot([g.generation for g in gens], [g.best for g in gens], "o-",
            color="#1f77b4", label="best (top-1)")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # generations are whole numbers
    ax.set_ylabel("fitness")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, out)


def kinship_per_generation(gens: Sequence[Generation], out: Path, metric: str = "pcc",
                           threshold: float | None = None) -> Path:
    """Mean pairwise kinship of the top-k after each generation (the saturation signal)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([g.generation for g in gens], [g.top_k_kinship for g in gens], "s-",
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
    """The figures of a run folder, read from its files: a breed run's (summary.json with
    per-generation top-k kinship) and, for any run, the family tree of its lineage."""
    from kinmerge.lineage.graph import collect

    run = Path(run)
    return run_figures(run, _breed_summary(run / "summary.json"),
                       read_history(run / "history.csv"), _threshold(run), collect(run))


def run_figures(run: Path, summary: BreedSummary | None, history: Sequence[Mapping[str, Any]],
                threshold: float | None, records: dict[str, LineageRecord]) -> list[Path]:
    """A breed run's figures from its typed summary and history rows (none without a
    summary), and the family tree of `records` (when any has parents), written into `run`."""
    from kinmerge.lineage.tree import draw

    written: list[Path] = []
    if summary is not None and summary.generations:
        children = [(int(r["generation"]), float(r["fitness"])) for r in history
                    if _given(r.get("fitness"))]
        points = [(float(r["parent_kinship"]), float(r["merge_gain"])) for r in history
                  if _given(r.get("parent_kinship")) and _given(r.get("merge_gain"))]
        mode = ("pairs by predicted gain" if summary.select == "predicted"
                else "with exploration" if summary.explore else "plain greedy")
        written.append(fitness_per_generation(summary.generations, children,
                                              run / "fitness.png",
                                              f"fitness per generation ({mode})"))
        written.append(kinship_per_generation(summary.generations, run / "topk_kinship.png",
                                              summary.metric, threshold))
        written.append(kinship_vs_gain(points, run / "kinship_vs_gain.png", summary.metric))
    if any(r.parents for r in records.values()):
        written.append(draw(records, run / "family.png"))
    log.info("plots written: %s", ", ".join(p.name for p in written) or "none")
    return written


def _given(v: Any) -> bool:
    """A history cell that holds a number (a CSV's empty cell is "")."""
    return v is not None and v != ""


def _breed_summary(path: Path) -> BreedSummary | None:
    """summary.json as a breed run's typed summary; None for any other run's (or none)."""
    from kinmerge.errors import KinmergeError
    from kinmerge.io.breed_summary import read_summary

    try:
        return read_summary(path.parent)
    except KinmergeError:  # an evolve or soup run's summary (or none): no breed figures
        return None


def _threshold(run: Path) -> float | None:
    cfg = run / "breed.yml"
    if not cfg.is_file():
        return None
    import yaml

    return ((yaml.safe_load(cfg.read_text()) or {}).get("kinship") or {}).get("threshold")
