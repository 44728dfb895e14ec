"""`kinmerge-yaml CONFIG OUT`: mergekit-yaml's command line, running kinmerge.

Existing command lines work unchanged. Flags that change nothing here are accepted and
documented as no-ops: --allow-crimes (kinmerge has no such checks to relax),
--lazy-unpickle (reads are always lazy), --low-cpu-memory, --clone-tensors, --read-to-gpu,
--multi-gpu, --safe-serialization (always safetensors), --trust-remote-code (never needed:
merges read weights only), --transformers-cache, --lora-merge-cache.
"""
from __future__ import annotations

import sys

import click

import kinmerge
from kinmerge.cli.app import install_signal_handlers, report_error, setup_logging
from kinmerge.cli.merge import merge_options
from kinmerge.errors import KinmergeError

NO_OPS = ("allow-crimes", "lazy-unpickle", "low-cpu-memory", "clone-tensors", "read-to-gpu",
          "multi-gpu", "safe-serialization", "trust-remote-code", "quiet")


def _no_ops(f):
    for flag in NO_OPS:
        f = click.option(f"--{flag}", is_flag=True, hidden=False, expose_value=False,
                         help="Accepted for mergekit compatibility; no effect.")(f)
    for opt in ("transformers-cache", "lora-merge-cache"):
        f = click.option(f"--{opt}", default=None, expose_value=False,
                         help="Accepted for mergekit compatibility; no effect.")(f)
    return f


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_file", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.argument("out_path", metavar="OUT", type=click.Path(file_okay=False))
@merge_options
@click.option("--cuda/--no-cuda", default=False, help="Compute on the GPU.")
@click.option("--device", default=None, help="Device (overrides --cuda).")
@click.option("--random-seed", type=int, default=None, help="Seed of stochastic methods.")
@click.option("--overwrite/--no-overwrite", default=True, show_default=True,
              help="mergekit-yaml replaces OUT by default.")
@click.option("-v", "--verbose", is_flag=True)
@_no_ops
def main(config_file, out_path, out_shard_size, copy_tokenizer, write_model_card,
         allow_nonfinite, cuda, device, random_seed, overwrite, verbose):
    """Merge CONFIG (mergekit YAML) into OUT, as mergekit-yaml does."""
    setup_logging(verbose)
    install_signal_handlers()
    try:
        kinmerge.merge(config_file, out_path, seed=random_seed,
                       device=device or ("cuda" if cuda else "cpu"),
                       out_shard_size=out_shard_size, copy_tokenizer=copy_tokenizer,
                       write_model_card=write_model_card, overwrite=overwrite, progress=True,
                       allow_nonfinite=allow_nonfinite)
    except KinmergeError as e:
        if verbose:
            raise
        report_error(e)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
