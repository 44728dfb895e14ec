"""`kinmerge merge | validate | plan | methods`."""
from __future__ import annotations

import json

import click
from rich.table import Table

import kinmerge
from kinmerge.cli.app import Stdout, main
from kinmerge.cli.progress import merge_bar
from kinmerge.core.dtypes import DTYPES
from kinmerge.methods import REGISTRY
from kinmerge.threads import HELP as THREADS_HELP

out = Stdout()


def merge_options(f):
    """Options shared by `kinmerge merge` and `kinmerge-yaml`."""
    f = click.option("--out-shard-size", default="5B", show_default=True,
                     help="Largest shard: bytes, or 500M, 1B, 2GiB.")(f)
    f = click.option("--copy-tokenizer/--no-copy-tokenizer", default=True, show_default=True,
                     help="Copy tokenizer files from the tokenizer source (default: base).")(f)
    f = click.option("--write-model-card/--no-write-model-card", default=True,
                     show_default=True, help="Write README.md with the recipe.")(f)
    f = click.option("--allow-nonfinite", is_flag=True,
                     help="Write the model even if a merged tensor holds NaN/Inf (warns, "
                          "naming them); by default that fails the merge.")(f)
    f = click.option("--allow-norm-growth", is_flag=True,
                     help="Do not warn about merged tensors whose norm is over 10x the "
                          "largest input norm of that tensor (absurd output norms).")(f)
    return f


@main.command("merge")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("out_path", metavar="OUT", type=click.Path(file_okay=False))
@merge_options
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Seed of stochastic methods (DARE); "
              "default: the recipe's `seed`, else 0.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default=None,
              help="Override the recipe's working dtype.")
@click.option("--work-dtype", type=click.Choice(["float32", "float64"]), default=None,
              help="Compute in this dtype whatever the recipe says (accuracy over parity).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--ties-topk", type=click.Choice(["stable", "mergekit"]), default=None,
              help="How TIES/breadcrumbs trims rank equal magnitudes: stable (default, "
                   "fast) or mergekit (stock mergekit's unstable sort: its exact bytes). "
                   "Overrides the recipe's `kinmerge: {topk: ...}`.")
@click.option("--stage", default=None, help="Multi-stage recipe: the stage to write to OUT "
              "(default: the unnamed one, else the last).")
@click.option("--intermediate-dir", type=click.Path(file_okay=False), default=None,
              help="Multi-stage recipe: keep intermediate stages here as DIR/NAME (and reuse "
              "them when their recipe is unchanged; another merge there is replaced only with "
              "--overwrite); default: OUT's temporary area, removed when the run ends.")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def merge_cmd(recipe, out_path, out_shard_size, copy_tokenizer, write_model_card,
              allow_nonfinite, allow_norm_growth, device, seed, dtype, work_dtype, overwrite,
              progress, ties_topk, stage, intermediate_dir, threads):
    """Merge the models of RECIPE (mergekit YAML) into the model directory OUT.

    A RECIPE of several YAML documents runs as stages (mergekit-multimerge's format)."""
    with merge_bar(progress) as bar:
        options = dict(seed=seed, device=device, dtype=dtype, work_dtype=work_dtype,
                       out_shard_size=out_shard_size, copy_tokenizer=copy_tokenizer,
                       write_model_card=write_model_card, overwrite=overwrite, progress=bar,
                       allow_nonfinite=allow_nonfinite, ties_topk=ties_topk, threads=threads,
                       allow_norm_growth=allow_norm_growth)
        path = kinmerge.merge(recipe, out_path, stage=stage, intermediate_dir=intermediate_dir,
                              **options)
    out.print(f"merged model written to {path}", highlight=False)


@main.command("lora-merge")
@click.argument("model", metavar="BASE+LORA")
@click.argument("out_path", metavar="OUT", type=click.Path(file_okay=False))
@merge_options
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default=None,
              help="Store the merged weights in this dtype (default: the base's).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def lora_merge_cmd(model, out_path, out_shard_size, copy_tokenizer, write_model_card,
                   allow_nonfinite, allow_norm_growth, dtype, overwrite, progress, threads):
    """Merge the PEFT LoRA adapter LORA into BASE and write the model directory OUT."""
    with merge_bar(progress) as bar:
        path = kinmerge.lora_merge(model, out_path, dtype=dtype, out_shard_size=out_shard_size,
                                   copy_tokenizer=copy_tokenizer,
                                   write_model_card=write_model_card, overwrite=overwrite,
                                   progress=bar, allow_nonfinite=allow_nonfinite,
                                   allow_norm_growth=allow_norm_growth, threads=threads)
    out.print(f"merged model written to {path}", highlight=False)


@main.command("validate")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--no-models", is_flag=True, help="Check the YAML alone; do not open models.")
def validate_cmd(recipe, no_models):
    """List every problem of RECIPE at once; exit non-zero if there is any."""
    if no_models:
        _validate_yaml(recipe)
        return
    from kinmerge.core.merge import make_plans  # planning (no torch), loaded when needed

    plans = make_plans(recipe)
    if plans[0][0] is not None:  # a multi-stage recipe: each stage it runs
        for s, p, _ in plans:
            for w in p.warnings:
                out.print(f"warning: stage {s.name or 'final'}: {w}", highlight=False)
            out.print(f"stage {s.name or 'final'} OK: {p.method.name}, {len(p.jobs)} output "
                      f"tensors, {len(p.recipe.model_refs())} models", highlight=False)
        return
    p = plans[0][1]
    for w in p.warnings:
        out.print(f"warning: {w}", highlight=False)
    out.print(f"recipe OK: {p.method.name}, {len(p.jobs)} output tensors, "
              f"{len(p.recipe.model_refs())} models", highlight=False)


def _validate_yaml(recipe) -> None:
    from kinmerge.core.stages import load_stages
    from kinmerge.core.validate import recipe_warnings

    stages = load_stages(recipe)
    if stages is not None:
        out.print(f"recipe OK: {len(stages)} stages (models not checked)", highlight=False)
        return
    for w in recipe_warnings(kinmerge.load_recipe(recipe)):
        out.print(f"warning: {w}", highlight=False)
    out.print("recipe OK (models not checked)")


@main.command("plan")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per output tensor.")
@click.option("--limit", type=int, default=None, help="Show at most this many tensors.")
def plan_cmd(recipe, as_json, limit):
    """Dry run: which output tensor comes from what, with which parameters, and the peak
    memory the merge is expected to take.

    A multi-stage RECIPE shows each stage the last one needs, in run order."""
    from kinmerge.core.merge import make_plans  # planning (no torch), loaded when needed

    plans = make_plans(recipe, peak=True)
    for s, p, peak in plans:
        if s is not None and not as_json:
            out.print(f"stage {s.name or 'final'} (document {s.index + 1})", highlight=False)
        _show_plan(p, as_json, limit, {"stage": s.name} if as_json and s else {}, peak=peak)


def _show_plan(p, as_json: bool, limit: int | None, extra: dict | None = None,
               peak=None) -> None:
    jobs = p.jobs[:limit] if limit else p.jobs
    if as_json:
        for j in jobs:
            click.echo(json.dumps({**(extra or {}), "tensor": j.name, "shape": list(j.shape),
                                   "dtype": j.out_dtype.name,
                                   "inputs": [f"{m}:{n}" for m, n in j.sources],
                                   "base": f"{j.base[0]}:{j.base[1]}" if j.base else None,
                                   "params": j.params}))
        return
    t = Table(title=f"{p.method.name}: {len(p.jobs)} output tensors", title_justify="left")
    for col in ("output tensor", "shape", "inputs", "base", "parameters"):
        t.add_column(col, overflow="fold")
    for j in jobs:
        t.add_row(j.name, "×".join(map(str, j.shape)),
                  "\n".join(f"{m}:{n}" for m, n in j.sources),
                  f"{j.base[0]}:{j.base[1]}" if j.base else "—",
                  ", ".join(f"{k}={_fmt(v)}" for k, v in j.params.items()))
    out.print(t)
    if peak is not None:
        out.print(str(peak), highlight=False)
    if p.vocab is not None and not p.vocab.by_index:
        v = p.vocab.out
        out.print(f"vocabulary: {v.n_tokens} tokens from {p.vocab.spec.source} ({v.source}'s "
                  f"tokenizer + {len(v.appended)} added), {v.rows} embedding rows",
                  highlight=False)
    for w in p.warnings:
        out.print(f"warning: {w}", highlight=False)


def _fmt(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _describe(p) -> str:
    """One parameter for `kinmerge methods`: scope, default, range."""
    text = f"{p.name} ({p.scope}{'' if p.required else '=' + str(p.default)})"
    text += " required" if p.required else ""
    if not p.effect:
        return text + ", no effect (accepted for mergekit)"
    if p.kind is not bool and str(p.range) != "any finite number":
        text += f" in {p.range}" + (" (outside: a warning)" if p.range.warn else "")
    return text


@main.command("methods")
@click.argument("name", required=False)
def methods_cmd(name):
    """Registered merge methods, their parameters, defaults and papers."""
    names = [kinmerge.methods.get_method(name).name] if name else sorted(REGISTRY)
    t = Table(show_lines=True)
    for col in ("method", "base", "parameters (scope=default)", "what it does", "paper"):
        t.add_column(col, overflow="fold")
    for n in names:
        m = REGISTRY[n]
        params = "\n".join(_describe(p) for p in m.params)
        base = "needed" if m.needs_base else "optional" if m.optional_base else "—"
        t.add_row(n, base, params or "—", m.summary, m.paper)
    out.print(t)
