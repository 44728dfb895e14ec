"""Rerun the README's experiments on the shipped zoo and keep what its tables show.

    python -m tools.results run runs/results     # what `make results` runs (~15 min)
    python -m tools.results write                # docs/results.json -> docs, examples

Every experiment writes its own `summary.json` under the run folder; `collect` keeps the
numbers the tables need, with the machine, seeds, date and load average, in
`docs/results.json`, from which `render` writes the blocks of README.md and docs/results.md
(a test checks that they still match).
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    from kinmerge.demo import DemoSummary
    from kinmerge.search.breed.summary import BreedSummary
    from kinmerge.search.evolve.summary import EvolveSummary

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Any)  # a typed summary with from_dict
SEEDS = (0, 1, 2)


def machine() -> str:
    """The CPU model and core count, e.g. "AMD EPYC 9B14 (2 cores)"."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def meta(seeds: tuple[int, ...]) -> dict:
    import torch
    return {"machine": machine(), "torch": torch.__version__.split("+")[0],
            "threads": torch.get_num_threads(), "seeds": list(seeds),
            "date": datetime.date.today().isoformat(), "load": os.getloadavg()[0]}


def zoo_result(root: Path) -> dict:
    from kinmerge.zoo.properties import measure
    return measure(root)


def demo_result(summary: DemoSummary, seed: int) -> dict:
    e, b = summary.evolve, summary.breed
    assert e is not None and b is not None, "the results' demo runs evolve and breed"
    return {"seed": seed, "scores": summary.scores, "best_hand": e.best_hand_merge,
            "best_hand_mean": e.best_hand_mean, "evolved_mean": e.heldout_mean,
            "evolve_trials": e.trials, "evolved_beats": e.beats_best_hand_merge,
            "breed_best": f"{b.best_model} {b.best_score:.3f}",
            "breed_evaluations": b.evaluations}


def winner_text(best_yml: Path) -> str:
    """The winner's searched values, e.g. "add w 0.22 d 0.57, rev w 0.76 d 0.50"."""
    recipe = yaml.safe_load(best_yml.read_text())
    parts = []
    for m in recipe.get("models", []):
        p = m.get("parameters") or {}
        vals = " ".join(f"{k[0]} {v:.2f}" for k, v in p.items() if isinstance(v, (int, float)))
        parts.append(f"{Path(m['model']).name} {vals}".strip())
    return ", ".join(parts)


def evolve_result(summary: EvolveSummary, out: Path, seed: int) -> dict:
    bl = summary.baselines_heldout
    assert bl is not None and summary.best_baseline is not None, "the examples have held-out"
    return {"seed": seed, "trials": summary.trials, "best_heldout": summary.best_heldout,
            "winner_scores": summary.best_heldout_scores, "winner": winner_text(
                out / "best.yml"), "baselines": bl, "sources": summary.sources_heldout,
            "best_baseline": summary.best_baseline,
            "best_baseline_heldout": bl[summary.best_baseline],
            "beats": summary.winner_beats_best_baseline}


def breed_result(summary: BreedSummary) -> dict:
    gens = [{"generation": g.generation, "top_k": list(g.top_k),
             "top_k_kinship": g.top_k_kinship, "best": g.best, "evaluations": g.evaluations}
            for g in summary.generations]
    return {"generations": gens, "stop_reason": summary.stop_reason,
            "evaluations": summary.evaluations, "best_model": summary.best_model,
            "best_score_text": f"{summary.best_score:.3f}"}


def run_all(out: Path, seeds: tuple[int, ...] = SEEDS, examples: Path = Path("examples"),
            zoo_dir: Path = Path("zoo")) -> dict:
    """Rerun every documented experiment into `out`; the examples read `zoo_dir` (./zoo)."""
    from kinmerge.demo import DemoSummary, run_demo
    from kinmerge.search.breed import breed
    from kinmerge.search.breed.summary import BreedSummary
    from kinmerge.search.evolve import evolve
    from kinmerge.search.evolve.summary import EvolveSummary
    from kinmerge.zoo.cache import copy_zoo, zoo
    result = {"meta": meta(seeds)}
    root = copy_zoo(zoo(), zoo_dir)
    result["zoo"] = zoo_result(root)
    demos = [_done(out / f"demo-{s}", DemoSummary) or run_demo(
        out / f"demo-{s}", seed=s, zoo_dir=root).summary for s in seeds]
    result["demo"] = {"parent_skills": list(demos[0].parent_skills),
                      "runs": [demo_result(d, s) for d, s in zip(demos, seeds)]}
    cfg = yaml.safe_load((examples / "evolve-zoo.yml").read_text())
    result["evolve"] = {"runs": [evolve_result(_done(out / f"evolve-{s}", EvolveSummary) or evolve(
        {**cfg, "seed": s}, out / f"evolve-{s}").summary, out / f"evolve-{s}", s)
        for s in seeds]}
    result["breed"] = {
        "explore": breed_result(_done(out / "breed", BreedSummary) or breed(
            examples / "breed-zoo.yml", out / "breed", plots=False).summary),
        "greedy": breed_result(_done(out / "greedy", BreedSummary) or breed(
            examples / "breed-zoo.yml", out / "greedy", explore=False, plots=False).summary)}
    return result


def _done(run: Path, kind: type[S]) -> S | None:
    """The typed summary of a finished experiment (an interrupted `make results` picks up
    there; `make results` starts from an empty folder)."""
    try:
        return kind.from_dict(json.loads((run / "summary.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
