"""`kinmerge demo --out runs/demo`: the whole story in a few minutes, offline."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from kinmerge import threads
from kinmerge.cli.app import Stdout, main

if TYPE_CHECKING:  # the demo itself is imported when the command runs
    from kinmerge.demo import DemoEvolve, DemoSummary


@main.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/demo"), show_default=True, help="Where results are written.")
@click.option("--seed", default=0, show_default=True, help="Seed of the zoo and the merges.")
@click.option("--zoo", "zoo_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Use this zoo directory instead of the cached one.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out: Path, seed: int, zoo_dir: Path | None, quiet: bool) -> None:
    """Build (or reuse) the zoo, show its kinship, merge two experts, score everything."""
    from kinmerge.demo import run_demo
    # measured: tiny models run fastest single-threaded (also in evolve's and breed's jobs):
    # one thread, passed as the argument (nothing set in the environment), unless the user
    # named a count in KINMERGE_THREADS
    n = None if os.environ.get(threads.ENV, "").strip() else 1
    threads.apply("elementwise", n)
    t0 = time.perf_counter()
    result = run_demo(out, seed=seed, zoo_dir=zoo_dir, progress=not quiet, threads=n)
    console = Stdout()
    if result.kinship is not None:
        console.print(kinship_table(result.kinship))
    console.print(scores_table(result.summary))
    s = result.summary
    best = s.scores[s.best_merge]["mean"]
    parents = {p: s.scores[p]["mean"] for p in s.parents}
    verdict = "beats" if all(best > v for v in parents.values()) else "does NOT beat"
    console.print(f"best merge [bold]{s.best_merge}[/] (mean {best:.3f}) {verdict} both "
                  "parents (" + ", ".join(f"{p} {v:.3f}" for p, v in parents.items()) + ")")
    if s.evolve is not None:
        console.print(evolve_verdict(s.evolve), highlight=False)
    if s.breed is not None:
        b = s.breed
        console.print(f"breeding: best {b.best_model} (search fitness {b.best_score:.3f}) "
                      f"after {b.evaluations} evaluations, stopped: {b.stop_reason}",
                      highlight=False)
    console.print(f"wrote {out}/summary.json, scores.png, kinship.png, recipes/, evolve/, "
                  f"breed/, report.html in {time.perf_counter() - t0:.0f}s", highlight=False)


def evolve_verdict(e: DemoEvolve) -> str:
    """One line: did the evolved recipe beat the best hand merge on held-out prompts?"""
    verdict = "beats" if e.beats_best_hand_merge else "does NOT beat"
    return (f"evolved recipe ({e.trials} trials, {e.best_recipe}): held-out mean "
            f"{e.heldout_mean:.3f} {verdict} the best hand merge {e.best_hand_merge} "
            f"({e.best_hand_mean:.3f})")


def kinship_table(m) -> Table:
    names = [Path(x).name for x in m.models]
    t = Table(title="kinship (cosine of task vectors, from the base)")
    t.add_column("")
    for n in names:
        t.add_column(n, justify="right")
    for n, row in zip(names, m["cs"]):
        t.add_row(n, *(f"{v:.3f}" for v in row))
    return t


def scores_table(summary: DemoSummary) -> Table:
    scores = summary.scores
    keys = list(next(iter(scores.values())))
    skills = summary.parent_skills
    t = Table(title=f"held-out exact match (mean = mean of {' and '.join(skills)})")
    t.add_column("model")
    for k in keys:
        t.add_column(k, justify="right", style="bold" if k == "mean" else None)
    for name, s in scores.items():
        style = "green" if name in (summary.best_merge, "evolved") else (
            "cyan" if name in summary.parents else None)
        t.add_row(name, *(f"{s[k]:.3f}" for k in keys), style=style)
    return t
