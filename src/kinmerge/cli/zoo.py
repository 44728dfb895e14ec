"""`kinmerge zoo build OUT/`: the trained tiny model family, built once and cached."""
from __future__ import annotations

import json
from pathlib import Path

import click

from kinmerge import threads as thread_policy
from kinmerge.cli.app import main
from kinmerge.errors import KinmergeError


@main.group("zoo")
def zoo_group() -> None:
    """The zoo: a tiny Llama base and experts at algorithmic skills (offline, seconds to score)."""


@zoo_group.command("build")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from-scratch", is_flag=True,
              help="Train the zoo here (minutes; weights depend on the CPU) instead of "
                   "unpacking the shipped, digest-checked one (seconds).")
@click.option("--seed", default=0, show_default=True,
              help="Seed of every random choice (with --from-scratch or --tiny).")
@click.option("--tiny", is_flag=True, help="The seconds-to-build zoo of the tests (untrained).")
@click.option("--preset", type=click.Choice(["default", "kin", "mix", "tiny"]),
              default="default", show_default=True,
              help="Which family: the shipped default; kin, the breeding family (three skills "
                   "that compose, two experts each; trained here, 5-8 min on 2 cores); mix, "
                   "kin's skills with experts trained on overlapping two-skill mixtures; tiny.")
@click.option("--no-cache", is_flag=True, help="Build into OUT directly, ignoring the cache.")
@click.option("--threads", type=int, default=None,
              help="Torch threads for training and the property check. Default: kinmerge's "
                   "policy, one (the zoo's tiny models train fastest on one thread); "
                   "KINMERGE_THREADS, or an OMP_NUM_THREADS you set, overrides it.")
def build(out: Path, from_scratch: bool, seed: int, tiny: bool, preset: str,
          no_cache: bool, threads: int | None) -> None:
    """Put the zoo in OUT: the shipped one, unpacked and checked against its sha256 digests
    (copied from the cache, $KINMERGE_CACHE or ~/.cache/kinmerge, after the first time)."""
    from kinmerge.zoo import artifact
    from kinmerge.zoo.cache import copy_zoo, is_zoo, zoo
    from kinmerge.zoo.family import ZooConfig, build_zoo
    if out.is_dir() and any(out.iterdir()) and not is_zoo(out):
        raise KinmergeError(f"{out} exists and is not a zoo: building would replace it",
                            where=str(out), fix="choose a new or empty folder, or a zoo to "
                                                "rebuild")
    # training runs under build_zoo's policy (one thread); the check after it scores tiny
    # models, fastest single-threaded too
    thread_policy.apply("elementwise", threads)
    preset = "tiny" if tiny else preset
    tiny = preset == "tiny"
    scratch = from_scratch or preset != "default"
    if seed != 0 and not scratch:
        raise KinmergeError(f"the shipped zoo is trained with seed 0, not {seed}",
                            where="kinmerge zoo build --seed", fix=f"add --from-scratch to "
                            f"train a zoo with seed {seed} here (minutes)")
    cfg = ZooConfig.preset(preset)
    if no_cache:
        path = build_zoo(out, cfg, seed, threads=threads) if scratch else artifact.materialize(out)
    else:
        path = copy_zoo(zoo(cfg, seed, from_scratch=scratch, threads=threads), out)
    from kinmerge.zoo.manifest import read_manifest

    manifest = read_manifest(path)
    shipped = manifest.extra.get("source")  # the shipped zoo says where it came from
    source = shipped if shipped is not None else f"trained here, seed {manifest.seed}"
    click.echo(f"zoo in {path} ({source}"
               + (", sha256 of every model checked)" if shipped is not None else ")"))
    for name, m in manifest.models.items():
        click.echo(f"  {name:<10} {m.skill or '(base)'}")
    click.echo(f"  tasks: {', '.join(manifest.skills)} (tasks/<skill>/heldout.jsonl)")
    if scratch and not tiny:  # trained here: say whether it came out usable
        from kinmerge.zoo.properties import check_zoo
        found = check_zoo(path)
        hint = ("the shipped zoo has them: build without --from-scratch" if preset == "default"
                else "try another --seed, and tell us your CPU")
        click.echo("properties: " + ("ok" if not found else "NOT met on this machine:\n  "
                                     + "\n  ".join(found) + f"\n  ({hint})"))


@zoo_group.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the measurements to this file.")
def check(root: Path, json_out: Path | None) -> None:
    """Measure a zoo's properties: experts good at their skill, base bad, kin by skill."""
    from kinmerge.zoo.properties import (BASE_MAX, EXPERT_MIN, KIN_BASE_MAX, KIN_EXPERT_MIN,
                                         KIN_MERGED_MIN, check_zoo, is_kin, is_mix,
                                         measure)
    # tiny models score fastest single-threaded (unless overridden)
    thread_policy.apply("elementwise")
    p = measure(root)
    skills = list(dict.fromkeys(p["skills"].values()))
    click.echo(f"{'model':<10} " + " ".join(f"{s:>6}" for s in skills))
    for name, sc in p["scores"].items():
        click.echo(f"{name:<10} " + " ".join(f"{sc[s]:6.3f}" for s in skills))
    click.echo("kinship (pcc): " + ", ".join(f"{k.replace('|', '/')} {v:.3f}"
                                             for k, v in p["pcc"].items()))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(p, indent=2) + "\n")
    found = check_zoo(root, measured=p)
    if found:
        raise click.ClickException("the zoo lacks a property:\n  " + "\n  ".join(found))
    if is_mix(root):
        click.echo(f"ok: every expert >= {KIN_EXPERT_MIN} on its main skill, the base <= "
                   f"{KIN_BASE_MAX} (experts of skill mixtures: no kinship rule)")
    elif is_kin(root):
        click.echo(f"ok: every expert >= {KIN_EXPERT_MIN} on its skill, the base <= "
                   f"{KIN_BASE_MAX}, same-skill experts the nearest kin; merging one expert "
                   f"per skill keeps each >= {KIN_MERGED_MIN} and beats every two-skill merge, "
                   "merging two same-skill experts gains nothing")
    else:
        click.echo(f"ok: every expert >= {EXPERT_MIN} on its skill, the base <= {BASE_MAX}, "
                   "same-skill experts the nearest kin")
