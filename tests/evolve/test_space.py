"""PS genome <-> recipe: decoding, clamping, round trips, and exact reproduction on disk."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import kinmerge
from kinmerge.search.evolve import ParamSpace, load_evolve_config
from kinmerge.errors import KinmergeError


def space_of(ps_config, **over) -> ParamSpace:
    return ParamSpace(load_evolve_config(ps_config(**over)))


def test_x0_decodes_to_range_middles(ps_config):
    sp = space_of(ps_config, template={"merge_method": "dare_ties", "dtype": "float32"},
                  search={"params": {"weight": [0, 2], "density": [0.2, 1.0]}})
    assert sp.dim == 4 and sp.names[0] == "m0.weight.all.g0"
    r = sp.decode([0.5] * 4, seed=3)
    assert r.seed == 3 and r.merge_method == "dare_ties"
    assert [m.parameters for m in r.models] == [{"weight": 1.0, "density": 0.6}] * 2


def test_decode_clamps(ps_config):
    sp = space_of(ps_config, template={"merge_method": "ties", "dtype": "float32"},
                  search={"params": {"weight": [-1, 1], "density": [0, 1.5]}})
    r = sp.decode([-0.3, 1.2, 0.0, 0.9])
    p0, p1 = (m.parameters for m in r.models)
    assert p0 == {"weight": -1.0, "density": 1.0}  # negative range kept; density <= 1
    assert p1 == {"weight": -1.0, "density": 1.0}  # gene 0.9 -> 1.35 -> clamped to 1


def test_weight_never_negative_without_declared_range(ps_config):
    sp = space_of(ps_config)
    assert sp.value(sp.genes[0], -5.0) == 0.0 and sp.value(sp.genes[0], 7.0) == 1.0


def test_layer_groups_and_filters_make_an_ordinary_recipe(ps_config):
    sp = space_of(ps_config, search={"params": {"weight": [0, 1]}, "layer_groups": 3,
                                     "filters": ["self_attn", "mlp"]})
    assert sp.dim == 2 * 3 * 3
    genome = [i / 20 for i in range(sp.dim)]
    r = sp.decode(genome)
    w = r.models[0].parameters["weight"]
    assert [e.get("filter") for e in w] == ["self_attn", "mlp", None]
    assert w[0]["value"] == [0.0, 0.05, 0.1]  # a gradient of 3 anchors per filter
    kinmerge.load_recipe(r.to_yaml())  # valid mergekit YAML as written
    assert sp.encode(r) == pytest.approx(genome, abs=1e-6)


def test_wrong_genome_length(ps_config):
    with pytest.raises(ValueError, match="genome has 3 genes"):
        space_of(ps_config).decode([0.5] * 3)


def test_exported_recipe_merges_byte_for_byte(ps_config, tmp_path):
    sp = space_of(ps_config, template={"merge_method": "dare_ties", "dtype": "float32"},
                  search={"params": {"weight": [0, 1], "density": [0, 1]}, "layer_groups": 2})
    recipe = sp.decode([0.3, 0.8, 0.6, 0.4, 0.7, 0.2, 0.5, 0.9], seed=1234)
    mem = kinmerge.merge_to_memory(recipe)
    (tmp_path / "best.yml").write_text(recipe.to_yaml())
    out = kinmerge.merge(tmp_path / "best.yml", tmp_path / "model")
    disk = load_file(out / "model.safetensors")
    assert disk.keys() == mem.tensors.keys()
    for n, t in mem.tensors.items():
        assert torch.equal(disk[n], t), n
    other = kinmerge.merge_to_memory(sp.decode([0.3, 0.8, 0.6, 0.4, 0.7, 0.2, 0.5, 0.9],
                                               seed=1235))
    assert any(not torch.equal(other.tensors[n], t) for n, t in mem.tensors.items())


def test_config_errors_are_listed(ps_config):
    bad = ps_config(mode="dfs", budgett=3)
    bad["search"] = {"params": {"weight": [1, 0]}}
    with pytest.raises(KinmergeError) as e:
        load_evolve_config(bad)
    msg = str(e.value)
    assert "unknown key 'budgett' (did you mean 'budget'?)" in msg
    assert "low < high" in msg


@pytest.mark.parametrize("over, problem", [
    ({"search": {"params": {"wieght": [0, 1]}}},
     "with every gene at 0: models[0].parameters: unknown parameter 'wieght' for "
     "task_arithmetic (did you mean 'weight'?"),
    ({"template": {"merge_method": "ties", "dtype": "float32"},
      "search": {"params": {"density": [0, 1]}}},
     "with every gene at 0: models[0] ("),
    ({"search": {"params": {"weight": [0, 1], "lambda": [0, 2]}}},
     "'lambda' is a global parameter of task_arithmetic"),
])
def test_a_search_space_that_makes_refused_recipes_fails_before_the_study(
        ps_config, tmp_path, over, problem):
    """A misspelt searched parameter, a required one not searched or a global one searched
    per model: every candidate would be refused, so the run is refused before OUT, the study
    or a worker exists, naming the config's keys."""
    from kinmerge.errors import ConfigError
    from kinmerge.search.evolve import evolve

    with pytest.raises(ConfigError) as e:
        evolve(ps_config(**over), tmp_path / "evo")
    assert e.value.message.startswith(
        "evolve config's search space (template + search.params) has ")
    assert any(p.startswith(problem) or problem in p for p in e.value.problems), \
        e.value.problems
    assert e.value.where == "template and search.params"
    assert not (tmp_path / "evo").exists()
