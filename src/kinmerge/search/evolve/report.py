"""What a run leaves behind besides best.yml: history.csv, fitness.png, summary.json."""
from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from kinmerge.figures import pyplot, save

COLUMNS = ["phase", "trial", "generation", "state", "fitness", "seed", "merge_seconds",
           "load_seconds", "eval_seconds", "worker", "scores", "genome", "recipe"]


def finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def write_history(path: Path, studies: Sequence[tuple[str, optuna.Study]]) -> None:
    """One row per trial of every phase, failed ones included (their state says so)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for phase, study in studies:
            for t in study.get_trials(deepcopy=False):
                a = t.user_attrs
                w.writerow({"phase": phase, "trial": t.number,
                            "generation": a.get("generation", ""), "state": t.state.name,
                            "fitness": "" if t.value is None else t.value,
                            "seed": a.get("seed", ""),
                            "merge_seconds": _round(a.get("merge_seconds")),
                            "load_seconds": _round(a.get("load_seconds")),
                            "eval_seconds": _round(a.get("eval_seconds")),
                            "worker": a.get("worker", ""),
                            "scores": json.dumps(a.get("scores", {})),
                            "genome": json.dumps([round(x, 6) for x in a.get("genome", [])]),
                            "recipe": a.get("recipe", "")})


def _round(x: float | None) -> float | str:
    return "" if x is None else round(x, 4)


def plot_fitness(path: Path, studies: Sequence[tuple[str, optuna.Study]]) -> None:
    """Best-so-far, generation mean and every trial's fitness against the generation."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for phase, study in studies:
        by_gen: dict[int, list[float]] = {}
        for t in finished(study):
            by_gen.setdefault(int(t.user_attrs.get("generation", 0)), []).append(t.value)
        if not by_gen:
            continue
        gens = sorted(by_gen)
        xs = [g + offset for g in gens]
        best, running = [], -math.inf
        for g in gens:
            running = max(running, *by_gen[g])
            best.append(running)
        for g, x in zip(gens, xs):
            ax.scatter([x] * len(by_gen[g]), by_gen[g], s=8, alpha=0.35, color="grey")
        ax.plot(xs, [sum(by_gen[g]) / len(by_gen[g]) for g in gens], label=f"{phase} mean")
        ax.plot(xs, best, label=f"{phase} best so far", linewidth=2)
        offset = xs[-1] + 1
    ax.set_xlabel("generation (0 = initial point x0)")
    ax.set_ylabel("fitness (search split)")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, path, dpi=120)


def timing(study: optuna.Study) -> dict[str, float]:
    """Median in-memory merge, model-load and evaluation seconds per finished trial (the
    median, so a worker's one-off start-up, e.g. importing transformers, does not skew it)."""
    ts = finished(study)
    if not ts:
        return {}
    out = {}
    for key in ("merge_seconds", "load_seconds", "eval_seconds"):
        out[f"{key}_median"] = statistics.median(t.user_attrs.get(key, 0.0) for t in ts)
    out["merge_over_eval"] = out["merge_seconds_median"] / max(out["eval_seconds_median"], 1e-12)
    return out


def write_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
