"""`kinmerge kinship`, `kinmerge kinship-matrix`, and `merge_cal` (ModelKinship's command).

Results go to stdout (a table, or one JSON object with --json); progress, warnings and
"written to" lines go to stderr, so `--json` output can be piped as is.
"""
from __future__ import annotations

import json
import math

import click
from rich.table import Table

from kinmerge.cli.app import Stdout, console as err, exit_on_error, main, setup_logging
from kinmerge.cli.progress import progress_bar
from kinmerge.errors import KinmergeError
from kinmerge.io.outpath import check_out, input_roots
from kinmerge import kinship as km  # kinship(), kinship_matrix() and plot load torch on use
from kinmerge.kinship.metrics import COMPAT_MODES, METRICS, parse_metrics
from kinmerge.threads import HELP as THREADS_HELP

out = Stdout(highlight=False)
MEANING = {"cs": "cosine similarity of the weight changes",
           "pcc": "Pearson correlation of the weight changes",
           "ed": "Euclidean distance between the weight changes"}


def _fmt(v: float) -> str:
    return "nan (undefined)" if math.isnan(v) else f"{v:.6f}"


def common_options(f):
    # applied bottom-up, so --base comes first in --help
    f = click.option("--threads", type=int, default=None, help=THREADS_HELP)(f)
    f = click.option("--progress/--no-progress", default=True, show_default=True)(f)
    f = click.option("--per-tensor", is_flag=True, help="ModelKinship's split calculation: "
                     "per-tensor metric, numel-weighted mean.")(f)
    f = click.option("--absolute-cosine", is_flag=True,
                     help="Report |cs|, as ModelKinship does (default: signed).")(f)
    f = click.option("--base", default=None, metavar="BASE",
                     help="The model all of them were fine-tuned from (required).")(f)
    return f


@main.command("kinship")
@click.argument("models", nargs=-1, required=True, metavar="A B [MORE...]")
@common_options
@click.option("--metrics", default="cs,pcc,ed", show_default=True,
              help="Comma- or space-separated: cs, pcc, ed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--per-layer", is_flag=True, help="Also break kinship down by layer and "
              "by module kind (attention / mlp / embeddings / norms).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the per-layer figure to this PNG.")
@click.option("--compat", type=click.Choice(COMPAT_MODES), default=None,
              help="Reproduce ModelKinship's float32 arithmetic and quirks (cross-checks).")
def kinship_cmd(models, base, absolute_cosine, per_tensor, progress, threads, metrics,
                as_json, per_layer, plot_path, compat):
    """Kinship of fine-tunes A and B of --base (more models: the mean over pairs)."""
    if len(models) < 2:
        raise KinmergeError(f"kinship needs two models, got {len(models)}", where="MODELS",
                            fix="kinmerge kinship A B --base BASE")
    _check_outputs(models, base, plot_path=plot_path)
    with progress_bar(progress, "kinship") as cb:
        r = km.kinship(*models, base=base, metrics=metrics, absolute_cosine=absolute_cosine,
                    per_tensor=per_tensor, per_layer=per_layer or bool(plot_path),
                    compat=compat, progress=cb, threads=threads)
    if plot_path:
        from kinmerge.kinship import plot

        path = plot.per_layer(r.per_layer, plot_path, title=_title(models))
        err.print(f"per-layer plot written to {path}", highlight=False)
    if as_json:
        d = r.to_dict()
        if not per_layer:
            d.pop("per_layer", None)
        click.echo(json.dumps(d, indent=2))
        return
    out.print(f"kinship of {_title(models)} (fine-tunes of {base}): {r.n:,} parameters, "
              f"{r.mode}{', |cos|' if r.absolute_cosine else ''}")
    for m, v in r.items():
        out.print(f"  {m:<4} {_fmt(v):>16}   {MEANING[m]}")
    if per_layer:
        _print_breakdown(r.per_layer, list(r))


def _check_outputs(models, base, **paths) -> None:
    """Refuse, before any read, a --plot or --csv that would land in an input model."""
    roots = input_roots([*models, base])
    for opt, p in paths.items():
        if p:
            check_out(p, roots, option="--" + opt.removesuffix("_path"), folder=False)


def _title(models) -> str:
    from kinmerge.kinship import plot

    return " and ".join(plot.short_label(m) for m in models)


def _print_breakdown(b: dict, metrics: list[str]) -> None:
    for key, heading in (("layers", "layer"), ("kinds", "module kind")):
        t = Table(title=f"kinship by {heading}", title_justify="left")
        t.add_column(heading)
        t.add_column("parameters", justify="right")
        for m in metrics:
            t.add_column(m, justify="right")
        for row in b[key]:
            t.add_row(str(row["group"]), f"{row['n']:,}", *(_fmt(row[m]) for m in metrics))
        out.print(t)


@main.command("kinship-matrix")
@click.argument("models", nargs=-1, required=True, metavar="M1 M2 [M3...]")
@common_options
@click.option("--metric", default="pcc", show_default=True,
              type=click.Choice(list(METRICS)), help="The metric to show and plot.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write the matrix as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a heatmap PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (all metrics).")
def matrix_cmd(models, base, absolute_cosine, per_tensor, progress, threads, metric,
               csv_path, plot_path, as_json):
    """Pairwise kinship of every two MODELS, reading each model once."""
    from kinmerge.kinship import plot

    _check_outputs(models, base, plot_path=plot_path, csv_path=csv_path)
    with progress_bar(progress, "kinship matrix") as cb:
        m = km.kinship_matrix(models, base=base, metrics=None if as_json else metric,
                           absolute_cosine=absolute_cosine, per_tensor=per_tensor, progress=cb,
                           threads=threads)
    if csv_path:
        err.print(f"matrix written to {m.write_csv(csv_path, metric)}", highlight=False)
    if plot_path:
        p = plot.heatmap(m[metric], m.models, metric, plot_path)
        err.print(f"heatmap written to {p}", highlight=False)
    if as_json:
        click.echo(json.dumps(m.to_dict(), indent=2))
        return
    labels = [plot.short_label(x) for x in m.models]
    t = Table(title=f"kinship ({metric})", title_justify="left")
    t.add_column("")
    for lab in labels:
        t.add_column(lab, justify="right")
    for lab, row in zip(labels, m[metric]):
        t.add_row(lab, *(f"{v:.4f}" for v in row))
    out.print(t)
    out.print(f"mean pairwise {metric}: {_fmt(m.mean_pairwise(metric))} "
              f"({m.n:,} parameters per delta, base {m.base})")


# --- merge_cal: ModelKinship's command line ----------------------------------------------------

@click.command("merge_cal", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_1")
@click.argument("model_2")
@click.argument("model_base")
@click.argument("metric")
@click.option("--split-calculation", is_flag=True,
              help="Per-tensor metric, numel-weighted mean (ModelKinship's option).")
@click.option("--signed-cosine", is_flag=True, help="Report the signed cosine, not |cos|.")
@click.option("--compat", type=click.Choice(COMPAT_MODES), default=None,
              help="Also reproduce ModelKinship's float32 arithmetic and quirks.")
@click.option("-v", "--verbose", is_flag=True)
def merge_cal(model_1, model_2, model_base, metric, split_calculation, signed_cosine, compat,
              verbose):
    """Model kinship of MODEL_1 and MODEL_2 from MODEL_BASE, as ModelKinship's merge_cal.

    METRIC: "cs pcc ed" or "cs,pcc,ed". Exact float64 arithmetic, |cos| as ModelKinship
    reports, and its output: one line per metric, in the order asked, the metric's key, a
    colon, then ModelKinship's sentence: `cs: Model Kinship based on Cosine Similarity: 0.12`.
    """
    setup_logging(verbose)
    with exit_on_error(verbose):
        names = parse_metrics(metric)
        r = km.kinship(model_1, model_2, base=model_base, metrics=names,
                    absolute_cosine=not signed_cosine, per_tensor=split_calculation,
                    compat=compat)
    for m, v in r.items():
        click.echo(f"{m}: {modelkinship_sentence(m, v, split_calculation)}")


def modelkinship_sentence(metric: str, value: float, split: bool) -> str:
    """ModelKinship's result sentence for one metric (its split mode rounds to 4 places)."""
    if split:
        return f"Model Kinship based on {METRICS[metric]} (weighted average): {value:.4f}"
    return f"Model Kinship based on {METRICS[metric]}: {value!r}"


def merge_cal_main() -> None:
    """Console-script entry point of `merge_cal`."""
    merge_cal()
