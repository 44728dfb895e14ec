"""`kinmerge-yaml CONFIG OUT` and `kinmerge-multi CONFIG --intermediate-dir DIR [--out-path
OUT]`: mergekit-yaml's and mergekit-multi's command lines, running kinmerge.

Every flag of mergekit-yaml 0.1.5 is accepted, with its `--no-` form, so existing command
lines work unchanged. What each does here (docs/reference/mergekit.md):
- same meaning: --cuda, --device, --random-seed, --out-shard-size, --copy-tokenizer,
  --write-model-card, -v, --quiet (no progress bar), -j/--num-threads (= --threads: torch's
  CPU threads for this merge), --gpu-rich (its --cuda part; the rest are no-ops here);
- no effect, because kinmerge always behaves that way or has nothing to relax (see NO_OPS).

TIES-family trims (ties, breadcrumbs, dare_ties ... wherever magnitudes are ranked) break ties
between equal magnitudes as stock mergekit does by default here (`--ties-topk mergekit`), so
a drop-in run gives mergekit's bytes; `kinmerge merge` keeps the stable order (earliest
first). mergekit's order comes from torch's unstable sort; measured on one machine with
mergekit-yaml 0.1.5 on bfloat16 models, it was the same over three runs and at 1, 2 and 4
threads, and kinmerge's `mergekit` order reproduced it bit for bit. A recipe's own
`kinmerge: {topk: ...}` is kept unless --ties-topk is given.
"""
from __future__ import annotations

import sys
import click

import kinmerge
from kinmerge.cli.app import exit_on_error, install_signal_handlers, setup_logging
from kinmerge.cli.merge import merge_options
from kinmerge.cli.progress import merge_bar
from kinmerge.core.multistage import run_all
from kinmerge.errors import KinmergeError
from kinmerge.threads import HELP as THREADS_HELP

# boolean flags (each with its --no- form) that change nothing here, and why
NO_OPS = {
    "allow-crimes": "kinmerge has no architecture-mixing checks to relax; it checks tensor "
                    "names and shapes",
    "trust-remote-code": "a merge reads weights and config.json only, never model code",
    "lazy-unpickle": "reads are always lazy (safetensors, or a restricted .bin loader)",
    "low-cpu-memory": "one tensor's inputs are in memory at a time; results go to disk",
    "read-to-gpu": "inputs are moved to --device tensor by tensor",
    "multi-gpu": "one device per merge",
    "async-write": "reads already overlap compute; each shard is written once, in order",
    "clone-tensors": "every output tensor is its own copy",
    "safe-serialization": "output is always safetensors (--no-safe-serialization too)",
}
# flags with a value that change nothing here, and why
NO_OP_VALUES = {
    "transformers-cache": (str, "models are found through the Hugging Face cache "
                                "(HF_HOME / HF_HUB_CACHE)"),
    "lora-merge-cache": (str, "LoRA adapters are applied while reading; no merged copy is "
                              "cached"),
    "lora-merge-dtype": (str, "LoRA adapters are applied in peft's arithmetic (float32 "
                              "product, one rounding to the weight's dtype)"),
    "write-threads": (int, "writes are sequential; see --async-write"),
}


def recipe_topk(config_file: str) -> str | None:
    """The recipe's own `kinmerge: {topk: ...}`, None where it has no `kinmerge:` block (or
    does not load: the merge then reports why)."""
    try:
        recipe = kinmerge.load_recipe(config_file)
    except KinmergeError:
        return None
    return recipe.kinmerge.topk if recipe.kinmerge else None


def _no_ops(f):
    for flag, why in reversed(NO_OPS.items()):
        f = click.option(f"--{flag}/--no-{flag}", default=None, expose_value=False,
                         help=f"Accepted for mergekit compatibility; no effect: {why}.")(f)
    for flag, (kind, why) in reversed(NO_OP_VALUES.items()):
        f = click.option(f"--{flag}", type=kind, default=None, expose_value=False,
                         help=f"Accepted for mergekit compatibility; no effect: {why}.")(f)
    return f


def _mergekit_options(f):
    """The options mergekit-yaml and mergekit-multi share (mergekit's merge options)."""
    for opt in reversed([
        merge_options,
        click.option("--cuda/--no-cuda", default=False, help="Compute on the GPU."),
        click.option("--device", default=None, help="Device (overrides --cuda)."),
        click.option("--gpu-rich", is_flag=True,
                     help="mergekit's alias for --cuda --low-cpu-memory --read-to-gpu "
                          "--multi-gpu: here --cuda (the others are no-ops)."),
        click.option("-j", "--num-threads", type=click.IntRange(min=1), default=None,
                     help="mergekit's name for --threads."),
        click.option("--random-seed", type=click.IntRange(0, 2**32 - 1), default=None,
                     help="Seed of stochastic methods."),
        click.option("--quiet/--no-quiet", default=False, help="No progress bar."),
        click.option("--overwrite/--no-overwrite", default=True, show_default=True,
                     help="mergekit replaces OUT by default (only a model folder or an empty "
                          "one is ever replaced)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP),
        click.option("--ties-topk", type=click.Choice(["mergekit", "stable"]), default=None,
                     help="How TIES/breadcrumbs trims rank equal magnitudes. Default: the "
                          "recipe's `kinmerge: {topk: ...}`, else mergekit (stock mergekit's "
                          "order: its bytes); stable: earliest first, as `kinmerge merge` does "
                          "by default."),
        click.option("--unsafe-truncate-embeddings/--no-unsafe-truncate-embeddings",
                     default=False,
                     help="UNSAFE, as in mergekit: with no tokenizer configured, embeddings "
                          "and output heads whose vocabularies differ keep the rows every "
                          "model has (config vocab_size follows). Assumes those token ids mean "
                          "the same tokens in every model; prefer tokenizer_source / "
                          "tokenizer:."),
        click.option("-v", "--verbose", count=True,
                     help="Debug logging and tracebacks (mergekit's -v, repeatable)."),
        _no_ops,
    ]):
        f = opt(f)
    return f


def _run(verbose: int, quiet: bool, call) -> None:
    setup_logging(bool(verbose))
    install_signal_handlers()
    try:
        with exit_on_error(bool(verbose)), merge_bar(not quiet) as bar:
            call(bar)
    except KeyboardInterrupt:
        sys.exit(130)


def _options(config_file, bar, out_shard_size, copy_tokenizer, write_model_card,
             allow_nonfinite, allow_norm_growth, cuda, device, gpu_rich, num_threads,
             random_seed, overwrite, threads, ties_topk, unsafe_truncate_embeddings) -> dict:
    return dict(seed=random_seed, device=device or ("cuda" if cuda or gpu_rich else "cpu"),
                out_shard_size=out_shard_size, copy_tokenizer=copy_tokenizer,
                write_model_card=write_model_card, overwrite=overwrite, progress=bar,
                allow_nonfinite=allow_nonfinite, allow_norm_growth=allow_norm_growth,
                threads=threads or num_threads,
                ties_topk=ties_topk or recipe_topk(config_file) or "mergekit",
                truncate_embeddings=unsafe_truncate_embeddings)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_file", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.argument("out_path", metavar="OUT", type=click.Path(file_okay=False))
@_mergekit_options
def main(config_file, out_path, quiet, verbose, **options):
    """Merge CONFIG (mergekit YAML) into OUT, as mergekit-yaml does.

    A CONFIG of several YAML documents (mergekit-multi's format: stages with a `name:`, later
    ones using earlier ones by name) runs its stages as `kinmerge merge` does: the unnamed
    document (else the last) is written to OUT, the stages it needs live in OUT's temporary
    area while it runs."""
    _run(verbose, quiet, lambda bar: kinmerge.merge(config_file, out_path,
                                                    **_options(config_file, bar, **options)))


@click.command("kinmerge-multi", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_file", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--intermediate-dir", required=True, type=click.Path(file_okay=False),
              help="Where each named stage is written (as DIR/NAME) and kept.")
@click.option("--out-path", type=click.Path(file_okay=False), default=None,
              help="Where the unnamed document (the final merge) is written; required when "
                   "there is one, refused when every document has a name.")
@click.option("--lazy/--no-lazy", default=True, show_default=True,
              help="Reuse a stage folder that already holds this stage's exact recipe's "
                   "merge (mergekit reuses any model folder there; kinmerge compares the "
                   "recipe); --no-lazy merges every stage again.")
@_mergekit_options
def multi_main(config_file, intermediate_dir, out_path, lazy, quiet, verbose, **options):
    """Run every stage of CONFIG (mergekit-multi's format), as mergekit-multi does.

    Each document is a mergekit recipe; one with `name: X` is written to
    --intermediate-dir/X and later documents use it as the model `X`; the one document
    without a name, if any, is written to --out-path."""
    def call(bar) -> None:
        done = run_all(config_file, intermediate_dir, out=out_path, lazy=lazy,
                       **_options(config_file, bar, **options))
        for name, path in done.items():
            click.echo(f"{'final merge' if name is None else 'stage ' + name}: {path}")

    _run(verbose, quiet, call)
