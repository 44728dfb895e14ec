"""`kinmerge breed BREED_YML --out DIR`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from kinmerge.cli.app import Stdout, main
from kinmerge.threads import ENV as THREADS_ENV, HELP as THREADS_HELP

if TYPE_CHECKING:  # the run itself is imported when the command runs
    from kinmerge.search.breed.summary import Generation

out = Stdout()


@main.command("breed")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder (rerun with the same folder to resume).")
@click.option("--generations", type=int, default=None, help="Generation limit.")
@click.option("--top-k", "k", type=int, default=None, help="How many top models to merge.")
@click.option("--explore/--no-explore", default=None,
              help="Also merge the best model with its least-related relative.")
@click.option("--select", type=click.Choice(["topk", "predicted", "random"]), default=None,
              help="How pairs are chosen: the top-k pairwise (Algorithm 1), by predicted "
                   "gain from kinship and the parents' fitness, or as many of predicted's "
                   "candidates drawn at random (its control).")
@click.option("--partner", type=click.Choice(["least_related", "random"]), default=None,
              help="Exploration's partner for the best model: its least related "
                   "non-ancestor, or one drawn at random (the control).")
@click.option("--stall", type=click.Choice(["stop", "fill"]), default=None,
              help="When the top-k stops changing: stop, or fill the rest of the budget with "
                   "the untried pairs of best parent fitness (greedy at its whole budget).")
@click.option("--budget", "evaluations", type=int, default=None,
              help="Most evaluations in all (the pool's included).")
@click.option("--seed", type=int, default=None, help="Merge seed.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Merges and evaluations of a generation run at once (processes, or Ray tasks).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True)
@click.option("--ray-address", default=None,
              help="Ray cluster to join (default: start a local one).")
@click.option("--report/--no-report", default=True, help="Write report.html at the end.")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def breed_cmd(config, out_dir, generations, k, explore, select, partner, stall, evaluations,
              seed, workers, backend, ray_address, report, threads):
    """Breed the pool of CONFIG: merge the top-k pairwise, generation after generation."""
    from kinmerge.search.breed import breed

    def show(g: Generation) -> None:
        extra = f" · explored {' + '.join(g.explored)}" if g.explored else ""
        if g.skipped:
            extra += f" · {g.skipped} pairs predicted useless"
        out.print(f"gen {g.generation}: best {g.best:.4f} ({g.best_model}) · "
                  f"top-k kinship {g.top_k_kinship:.3f} · {g.evaluations} evaluations"
                  f"{extra}", highlight=False)

    result = breed(config, out_dir, generations=generations, k=k, explore=explore,
                   select=select, partner=partner, stall=stall, evaluations=evaluations,
                   seed=seed, on_generation=show, workers=workers, backend=backend,
                   ray_address=ray_address, threads=threads)
    s = result.summary
    table = Table("gen", "top-k", "top-k kinship", "best", "evaluations")
    for g in s.generations:
        table.add_row(str(g.generation), ", ".join(g.top_k), f"{g.top_k_kinship:.3f}",
                      f"{g.best:.4f}", str(g.evaluations))
    out.print(table)
    out.print(f"stopped: {s.stop_reason} · best {s.best_model} = {s.best_score:.4f} "
              f"· {s.evaluations} evaluations · {s.best_path}", highlight=False)
    if report:
        from kinmerge.report import write_report

        out.print(f"report: {write_report(out_dir, plots=False)}", highlight=False)
