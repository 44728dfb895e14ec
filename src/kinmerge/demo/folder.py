"""The demo's folder: the recipes of every hand merge, naming the zoo's models as ./zoo/NAME,
and the zoo linked (or copied) beside them, so `cd OUT && kinmerge merge recipes/ties.yml
merged/` rebuilds a merge after the zoo's cache moves or OUT is copied elsewhere; and
`working_dir`, under which evolve and breed write their configs with those same paths."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from kinmerge.zoo.manifest import ZooManifest


def demo_recipes(zoo_dir: str | Path, a: str, b: str) -> dict[str, dict]:
    """Merges of experts a and b, by several methods (names are the table's rows); models are
    named `zoo_dir/NAME`, joined as text (so `./zoo` stays `./zoo/NAME`)."""
    base, pa, pb = (os.path.join(str(zoo_dir), n) for n in ("base", a, b))

    def with_base(method: str, wa: float, wb: float, **params) -> dict:
        models = [{"model": pa, "parameters": {"weight": wa, **params}},
                  {"model": pb, "parameters": {"weight": wb, **params}}]
        return {"merge_method": method, "base_model": base, "models": models,
                "dtype": "float32"}

    return {
        "linear": {"merge_method": "linear", "dtype": "float32",
                   "models": [{"model": pa, "parameters": {"weight": 0.5}},
                              {"model": pb, "parameters": {"weight": 0.5}}]},
        "slerp": {"merge_method": "slerp", "base_model": pa, "dtype": "float32",
                  "models": [{"model": pa}, {"model": pb}], "parameters": {"t": 0.5}},
        "task_arithmetic_0.5": with_base("task_arithmetic", 0.5, 0.5),
        "task_arithmetic_0.8": with_base("task_arithmetic", 0.8, 0.8),
        "task_arithmetic_1.0": with_base("task_arithmetic", 1.0, 1.0),
        "ties": {**with_base("ties", 1.0, 1.0, density=0.5)},
        "dare_ties": {**with_base("dare_ties", 1.0, 1.0, density=0.5)},
    }


ZOO_IN_OUT = "./zoo"  # how the written recipes name the zoo: relative to the demo's folder


def write_recipes(out: Path, root: Path, manifest: ZooManifest) -> Path:
    """OUT/recipes/*.yml naming the models as ./zoo/NAME, and OUT/zoo holding the zoo's models,
    tasks and zoo.json (hard links into the zoo where the file system allows, else copies), so
    the recipes merge from OUT (`cd OUT && kinmerge merge recipes/ties.yml merged/`) after the
    zoo's cache moves or OUT is copied elsewhere. `./` keeps them from reading as hub ids."""
    local = out / "zoo"
    if local.resolve() != root.resolve():
        local.mkdir(exist_ok=True)
        for name in dict.fromkeys(["base", *manifest.models, "tasks"]):
            _link_tree(root / name, local / name)
        _link_or_copy(str(root / "zoo.json"), str(local / ".zoo.json.tmp"))
        os.replace(local / ".zoo.json.tmp", local / "zoo.json")
    (out / "recipes").mkdir(exist_ok=True)
    a, b = manifest.parents
    for name, recipe in demo_recipes(ZOO_IN_OUT, a, b).items():
        (out / "recipes" / f"{name}.yml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return out / "recipes"


@contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """Run inside `path`, then return. The demo runs evolve and breed from OUT with relative
    model paths, so best.yml, evolve.yml, breed.yml and the bred models' recipes name
    ./zoo/NAME and keep working after OUT moves (relative paths resolve against the working
    directory, as in mergekit)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _link_tree(src: Path, dest: Path) -> None:
    """Replace `dest` with a hard-linked (or copied) tree of `src`, via a temporary name."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dest)
