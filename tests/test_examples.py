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


def test_search_examples_comments_are_the_code_arithmetic():
    """The numbers the evolve examples' comments state follow from the config: the gene CMA-ES
    starts at decodes to the stated weight, and the stated population times generations is
    the trial budget."""
    import re

    from kinmerge.search.evolve.config import load_evolve_config
    from kinmerge.search.evolve.search import default_popsize as popsize
    from kinmerge.search.evolve.space import ParamSpace

    checked = 0
    for path in EXAMPLES:
        text = path.read_text()
        for x, want in re.findall(r"# gene ([\d.]+) \(CMA-ES's x0\) decodes to ([\d.]+)", text):
            space = ParamSpace(load_evolve_config(path))
            gene = next(g for g in space.genes if g.param == "weight")
            assert space.value(gene, float(x)) == float(want), path.name
            checked += 1
        m = re.search(r"trials: (\d+)\s+# (\d+) generations of (\d+) \(population 4 \+ "
                      r"floor\(3 ln (\d+)\)\)", text)
        if m:
            trials, gens, pop, dim = map(int, m.groups())
            assert ParamSpace(load_evolve_config(path)).dim == dim
            assert popsize(dim) == pop and gens * pop == trials, path.name
            checked += 1
    assert checked >= 3  # evolve-zoo: gene and budget; evolve-kin-dfs: gene
