"""Every recipe in examples/ runs, against synthetic models laid out as the zoo's are."""
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from kinmerge.cli import main
from kinmerge.core.stages import is_multistage
from kinmerge.core.recipe import load_recipe
from kinmerge.zoo.synthetic import synthetic_llama

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yml"))
# merge recipes; evolve-*.yml, breed-*.yml and soup-*.yml configure other commands (own tests)
RECIPES = [p for p in EXAMPLES if not p.stem.startswith(("evolve-", "breed-", "soup-"))]


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ex")
    kw = dict(layers=4, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "zoo" / "base", seed=0, **kw)
    for i, name in enumerate(["add", "rev", "sort", "add_seed2"], start=1):
        synthetic_llama(root / "zoo" / name, base=base, seed=i, delta=0.05, **kw)
    return root


def test_there_are_examples():
    assert {p.stem for p in RECIPES} >= {"linear", "slerp", "task_arithmetic", "ties",
                                         "dare_ties", "passthrough"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_example_merges(recipe, zoo_dir, monkeypatch):
    monkeypatch.chdir(zoo_dir)
    r = CliRunner().invoke(main, ["merge", str(recipe), f"out/{recipe.stem}"])
    assert r.exit_code == 0, r.output
    out = zoo_dir / "out" / recipe.stem
    tensors = load_file(out / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in tensors.values())
    layers = 6 if recipe.stem == "passthrough" else 4
    assert f'"num_hidden_layers": {layers}' in (out / "config.json").read_text()
    if not is_multistage(recipe):  # a multi-stage OUT holds the final stage's recipe
        assert load_recipe(out / "mergekit_config.yml") == load_recipe(recipe)
