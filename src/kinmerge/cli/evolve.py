"""`kinmerge evolve`: search merge recipes with CMA-ES (see docs/guides/evolve.md)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kinmerge.cli.app import Stdout, main
from kinmerge.threads import ENV as THREADS_ENV, HELP as THREADS_HELP

if TYPE_CHECKING:  # the run itself is imported when the command runs
    from kinmerge.search.evolve.summary import EvolveSummary

out = Stdout()


@main.command("evolve")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory: study.db, best.yml, history.csv, fitness.png, summary.json.")
@click.option("--trials", type=int, default=None,
              help="Finished trials per phase (overrides budget.trials).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Candidates evaluated at once (processes, or Ray tasks).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True)
@click.option("--ray-address", default=None,
              help="Ray cluster to join (default: start a local one).")
@click.option("--storage", default=None,
              help="SQLAlchemy URL of the study database (default: sqlite in --out).")
@click.option("--resume", is_flag=True, help="Continue the study in --out / --storage.")
@click.option("--save-best", is_flag=True, help="Also write the winner to OUT/best-model.")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def evolve_cmd(config, out_dir, trials, workers, backend, ray_address, storage, resume,
               save_best, threads):
    """Evolve a merge recipe as CONFIG (evolve.yml) says."""
    from kinmerge.search.evolve import evolve

    def line(s):
        out.print(f"[{s.phase}] gen {s.generation:3d}  trials {s.trials:4d}  "
                  f"best {s.best:.4f}  mean {s.mean:.4f}  {s.trials_per_s:.2f} trials/s",
                  highlight=False)

    result = evolve(config, out_dir, trials=trials, workers=workers, backend=backend,
                    storage=storage, resume=resume, save_best=save_best,
                    ray_address=ray_address, on_generation=line, threads=threads)
    for text in summary_lines(result.summary, result.best_recipe):
        out.print(text, highlight=False)


def summary_lines(s: EvolveSummary, best_recipe) -> list[str]:
    """The end of a run in words: the winner, the best hand recipe, who won."""
    lines = [f"{s.mode}: {s.trials} trials; winner {best_recipe} "
             f"(search fitness {s.best_search:.4f})"]
    if s.best_heldout is None:
        return lines + ["no held-out split in the fitness: nothing to compare on unseen prompts"]
    lines.append(f"held-out: winner {s.best_heldout:.4f}")
    if s.best_baseline and s.baselines_heldout:
        bl = s.baselines_heldout[s.best_baseline]
        verdict = "beats" if s.winner_beats_best_baseline else "does NOT beat"
        lines.append(f"held-out: best hand recipe {s.best_baseline} {bl:.4f} "
                     f"({len(s.baselines_heldout)} tried): the winner {verdict} it")
    return lines
