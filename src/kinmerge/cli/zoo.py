"""`kinmerge zoo build OUT/`: the trained tiny model family, built once and cached."""
from __future__ import annotations

import os
from pathlib import Path

import click

from kinmerge import threads
from kinmerge.cli.app import main
from kinmerge.errors import KinmergeError


@main.group("zoo")
def zoo_group() -> None:
    """The zoo: a tiny Llama base and experts at algorithmic skills (offline, seconds to score)."""


@zoo_group.command("build")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice.")
@click.option("--tiny", is_flag=True, help="The seconds-to-build zoo of the tests (untrained).")
@click.option("--no-cache", is_flag=True, help="Build into OUT directly, ignoring the cache.")
def build(out: Path, seed: int, tiny: bool, no_cache: bool) -> None:
    """Build the zoo into OUT (or copy it from the cache, $KINMERGE_CACHE or ~/.cache/kinmerge)."""
    from kinmerge.zoo.family import ZooConfig, build_zoo, copy_zoo, is_zoo, zoo
    if out.is_dir() and any(out.iterdir()) and not is_zoo(out):
        raise KinmergeError(f"{out} exists and is not a zoo: building would replace it",
                            where=str(out), fix="choose a new or empty folder, or a zoo to "
                                                "rebuild")
    # measured: tiny models train fastest single-threaded (also in evolve's scoring jobs)
    os.environ.setdefault("KINMERGE_THREADS", "1")
    threads.apply("elementwise")
    cfg = ZooConfig.tiny() if tiny else ZooConfig()
    if no_cache:
        path = build_zoo(out, cfg, seed)
    else:
        path = copy_zoo(zoo(cfg, seed), out)
    from kinmerge.zoo.manifest import read_manifest

    manifest = read_manifest(path)
    click.echo(f"zoo in {path}")
    for name, m in manifest["models"].items():
        click.echo(f"  {name:<10} {m['skill'] or '(base)'}")
    click.echo(f"  tasks: {', '.join(manifest['skills'])} (tasks/<skill>/heldout.jsonl)")
