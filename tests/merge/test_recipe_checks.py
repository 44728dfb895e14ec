"""Numbers checked before any tensor is read, and every parameter mergekit accepts accepted."""
from __future__ import annotations

import logging

import pytest
import torch

import kinmerge
from kinmerge.errors import PlanError, RecipeError
from kinmerge.methods import REGISTRY
from kinmerge.methods.registry import MERGEKIT_PARAMETERS
from kinmerge.core.recipe import load_recipe
from kinmerge.core.validate import recipe_warnings

NAN, INF = float("nan"), float("inf")


def problems(recipe) -> list[str]:
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe)
    return e.value.problems


def ties(params: dict, top: dict | None = None) -> dict:
    return {"merge_method": "ties", "base_model": "b", "parameters": top or {},
            "models": [{"model": "x", "parameters": {"weight": 1, **params}}]}


@pytest.mark.parametrize("params, top, want", [
    ({"density": NAN}, None, "models[0].parameters.density: density must be in [0, 1], got nan"),
    ({"density": 1.5}, None, "models[0].parameters.density: density must be in [0, 1], got 1.5"),
    ({"density": -0.1}, None,
     "models[0].parameters.density: density must be in [0, 1], got -0.1"),
    ({"weight": INF}, None, "models[0].parameters.weight: weight must be a finite number, got inf"),
    ({"density": [0.5, 0.9, 1.2]}, None,
     "models[0].parameters.density[2]: density must be in [0, 1], got 1.2"),
    ({"density": [{"filter": "mlp", "value": [0.1, -2]}, {"value": 0.5}]}, None,
     "models[0].parameters.density[0].value[1]: density must be in [0, 1], got -2"),
    ({}, {"lambda": NAN}, "parameters.lambda: lambda must be a finite number, got nan"),
    ({}, {"lambda": -INF}, "parameters.lambda: lambda must be a finite number, got -inf"),
])
def test_out_of_range_numbers_are_errors(params, top, want):
    assert problems(ties(params, top)) == [want]


def test_breadcrumbs_gamma_inf_and_della_epsilon():
    r = {"merge_method": "breadcrumbs", "base_model": "b",
         "models": [{"model": "x", "parameters": {"weight": 1, "gamma": INF}}]}
    assert problems(r) == ["models[0].parameters.gamma: gamma must be in [0, 1], got inf"]
    r = {"merge_method": "della", "base_model": "b",
         "models": [{"model": "x", "parameters": {"weight": 1, "epsilon": 0.5}}]}
    assert problems(r) == ["models[0].parameters.epsilon: epsilon must be in [0, 0.5), got 0.5"]


def test_slerp_t_outside_unit_is_a_warning():
    r = load_recipe({"merge_method": "slerp", "base_model": "b", "parameters": {"t": [0, 1.5]},
                     "models": [{"model": "b"}, {"model": "x"}]})
    assert recipe_warnings(r) == ["parameters.t[1]: t = 1.5 lies outside [0, 1]; kept, as "
                                  "mergekit runs it (it extrapolates): check it is meant"]
    assert problems({"merge_method": "slerp", "base_model": "b", "parameters": {"t": NAN},
                     "models": [{"model": "b"}, {"model": "x"}]}) == [
        "parameters.t: t must be in [0, 1], got nan"]


def test_model_listed_twice():
    assert problems({"merge_method": "linear", "models": [
        {"model": "x", "parameters": {"weight": 1}}, {"model": "y", "parameters": {"weight": 1}},
        {"model": "x", "parameters": {"weight": 2}}]}) == [
        "models[2]: model 'x' is listed twice (also models[0]); list each model once and give "
        "it the combined weight"]


def test_mergekit_parameters_accepted():
    r = load_recipe({"merge_method": "ties", "base_model": "b", "parameters": None,
                     "models": [{"model": "b", "parameters": None},
                                {"model": "x", "parameters": {"weight": "1e-1",
                                                              "density": "0.5"}}]})
    assert r.parameters == {} and r.models[0].parameters == {}
    assert r.models[1].parameters == {"weight": 0.1, "density": 0.5}
    load_recipe({"merge_method": "ties", "base_model": "b",
                 "parameters": {"int8_mask": True, "normalize": 1, "rescale": 0},
                 "models": [{"model": "x", "parameters": {"weight": 1}}]})
    r = load_recipe({"merge_method": "passthrough", "slices": [
        {"parameters": None, "sources": [{"model": "x", "layer_range": [0, 1],
                                          "parameters": None}]}]})
    assert r.slices[0].parameters == {} and r.slices[0].sources[0].parameters == {}


def test_ignored_parameters_one_warning_typos_errors():
    r = load_recipe({"merge_method": "task_arithmetic", "base_model": "b",
                     "parameters": {"rescale": True, "int8_mask": True},
                     "models": [{"model": "x", "parameters": {"weight": 1, "density": 0.5}},
                                {"model": "y", "parameters": {"weight": 1, "density": 0.3}}]})
    assert recipe_warnings(r) == [
        "task_arithmetic does not use these parameters of other mergekit methods; ignored, as "
        "mergekit ignores them: rescale (at parameters); density (at models[0].parameters, "
        "models[1].parameters)"]
    assert problems(ties({"denisty": 0.5})) == [
        "models[0].parameters: unknown parameter 'denisty' for ties (did you mean 'density'? "
        "ties takes: weight, density, normalize, rescale, lambda, int8_mask)"]
    assert problems({"merge_method": "task_arithmetic", "base_model": "b", "models": [
        {"model": "x", "parameters": {"weight": 1, "denisty": 0.5}}]}) == [
        "models[0].parameters: unknown parameter 'denisty' for task_arithmetic (did you mean "
        "'density'? task_arithmetic takes: weight, normalize, lambda, int8_mask)"]


def test_every_method_declares_what_mergekit_declares():
    """mergekit 0.1.5's parameter lists, per method (its registry, read once)."""
    mergekit = {
        "task_arithmetic": {"int8_mask", "normalize", "lambda", "weight"},
        "ties": {"int8_mask", "normalize", "rescale", "lambda", "weight", "density"},
        "dare_ties": {"int8_mask", "normalize", "rescale", "lambda", "weight", "density"},
        "dare_linear": {"int8_mask", "normalize", "rescale", "lambda", "weight", "density"},
        "breadcrumbs": {"int8_mask", "normalize", "rescale", "lambda", "weight", "density",
                        "gamma"},
        "breadcrumbs_ties": {"int8_mask", "normalize", "rescale", "lambda", "weight",
                             "density", "gamma"},
        "della": {"int8_mask", "normalize", "rescale", "lambda", "weight", "density",
                  "epsilon"},
        "della_linear": {"int8_mask", "normalize", "rescale", "lambda", "weight", "density",
                         "epsilon"},
        "linear": {"weight", "normalize"}, "slerp": {"t"}, "passthrough": {"scale"},
        "model_stock": {"filter_wise"},
    }  # task_arithmetic's density and rescale change nothing in mergekit: warned, not declared
    for name, params in mergekit.items():
        assert {p.name for p in REGISTRY[name].params} == params, name
    assert set().union(*mergekit.values()) <= MERGEKIT_PARAMETERS


def test_defaults_are_mergekits():
    d = {(m, p.name): p.default for m in REGISTRY for p in REGISTRY[m].params}
    assert d["breadcrumbs", "density"] == 1.0 and d["breadcrumbs", "gamma"] == 0.01
    assert d["breadcrumbs_ties", "normalize"] is False
    assert d["della", "epsilon"] == 0.15 and d["della_linear", "epsilon"] == 0.15
    assert d["della", "rescale"] is True and d["ties", "rescale"] is False


# --- checks that need the resolved per-tensor values: `plan`, before any tensor is read ----
def test_della_density_epsilon_in_plan(family):
    r = {"merge_method": "della", "base_model": family["base"],
         "models": [{"model": family["ft"][0],
                     "parameters": {"weight": 1, "density": [0.5, 0.9], "epsilon": 0.15}}]}
    with pytest.raises(PlanError) as e:
        kinmerge.make_plan(r)
    (p,) = e.value.problems
    assert p.startswith("della needs 0 < density ± epsilon < 1 (keep probabilities), got "
                        "density 0.9, epsilon 0.15; lower epsilon or move density away from 0 "
                        "and 1 (tensors: model.layers.2.")
    assert p.endswith(" more)")


def test_linear_weights_summing_to_zero(family):
    r = {"merge_method": "linear", "models": [
        {"model": family["ft"][0], "parameters": {"weight": 1}},
        {"model": family["ft"][1], "parameters": {"weight": -1}}]}
    with pytest.raises(PlanError) as e:
        kinmerge.make_plan(r)
    assert e.value.problems[0].startswith(
        "the weights [1.0, -1.0] sum to 0 and normalize divides by their sum; change a weight "
        "or set normalize: false (tensors: ")
    r["parameters"] = {"normalize": False}
    assert kinmerge.make_plan(r).jobs


def test_task_arithmetic_zero_sum_under_normalize_warns(family, caplog, tmp_path):
    r = {"merge_method": "task_arithmetic", "base_model": family["base"],
         "parameters": {"normalize": True},
         "models": [{"model": family["ft"][0], "parameters": {"weight": 1}},
                    {"model": family["ft"][1], "parameters": {"weight": -1}}]}
    p = kinmerge.make_plan(r)
    assert any(w.startswith("the weights [1.0, -1.0] sum to 0, so normalize cannot divide by "
                            "their sum: the weighted task vectors are added undivided (as in "
                            "mergekit) (tensors: ") for w in p.warnings)
    with caplog.at_level(logging.WARNING):
        out = kinmerge.merge(r, tmp_path / "out", write_model_card=False)
    assert "sum to 0" in caplog.text and (out / "config.json").exists()


def test_model_stock_filter_wise_rows(family):
    r = {"merge_method": "model_stock", "base_model": family["base"],
         "parameters": {"filter_wise": True},
         "models": [{"model": family["ft"][0]}, {"model": family["ft"][1]}]}
    merged = kinmerge.merge_to_memory(r)
    name = "model.layers.0.mlp.up_proj.weight"
    from kinmerge.io.reader import ModelReader
    with ModelReader(family["base"]) as b, ModelReader(family["ft"][0]) as x, \
            ModelReader(family["ft"][1]) as y:
        w0, w1, w2 = b.get(name), x.get(name), y.get(name)
    d1, d2 = w1 - w0, w2 - w0
    cos = torch.nn.functional.cosine_similarity(d1, d2, dim=-1).unsqueeze(-1)  # per row
    t = 2 * cos / (1 + cos)
    torch.testing.assert_close(merged.tensors[name], t * (w1 + w2) / 2 + (1 - t) * w0)


# --- from the command line ------------------------------------------------------------------
def test_cli_validate_prints_warnings_and_errors(family, tmp_path):
    from click.testing import CliRunner

    from kinmerge.cli import main
    f = tmp_path / "r.yml"
    f.write_text(f"merge_method: task_arithmetic\nbase_model: {family['base']}\n"
                 "parameters:\n  int8_mask: true\nmodels:\n"
                 f"  - model: {family['base']}\n    parameters:\n"
                 f"  - model: {family['ft'][0]}\n    parameters: {{weight: 1, density: 0.5}}\n")
    for args in (["validate", f], ["validate", f, "--no-models"]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        assert ("warning: task_arithmetic does not use these parameters of other mergekit "
                "methods; ignored, as mergekit ignores them: density (at "
                "models[1].parameters)") in " ".join(r.output.split())
    f.write_text(f.read_text().replace("density: 0.5", "density: .nan"))
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 0  # task_arithmetic ignores density: its value is not checked
    f.write_text(f.read_text().replace("task_arithmetic", "ties"))
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 2
    assert "models[1].parameters.density: density must be in [0, 1], got nan" in r.output
    assert "Traceback" not in r.output


def test_cli_ties_topk_flag(family_bf16, tmp_path):
    from click.testing import CliRunner

    from kinmerge.cli import main
    from kinmerge.io.reader import ModelReader
    f = tmp_path / "r.yml"
    f.write_text(f"merge_method: ties\nbase_model: {family_bf16['base']}\ndtype: bfloat16\n"
                 "models:\n" + "".join(f"  - model: {m}\n    parameters: {{weight: 1, "
                                       "density: 0.3}\n" for m in family_bf16["ft"]))
    for mode in ("stable", "mergekit"):
        r = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / mode), "--ties-topk",
                                      mode, "--no-progress"])
        assert r.exit_code == 0, r.output
    want = kinmerge.merge_to_memory(str(f), ties_topk="mergekit").tensors
    with ModelReader(tmp_path / "mergekit") as a, ModelReader(tmp_path / "stable") as b:
        assert all(torch.equal(a.get(n), want[n]) for n in a.names())
        assert any(not torch.equal(a.get(n), b.get(n)) for n in a.names())


def test_mergekit_slice_keys():
    src = [{"model": "b", "layer_range": [0, 1]}, {"model": "x", "layer_range": [0, 1]}]
    r = load_recipe({"merge_method": "slerp", "base_model": "b", "parameters": {"t": 0.5},
                     "slices": [{"sources": src, "base_model": "b", "residual_weight": 0.5}]})
    assert recipe_warnings(r) == [
        "slices[0].residual_weight changes nothing (mergekit 0.1.5 ignores it too)"]
    # a slice's own base (one of its sources) is that slice's base, as in mergekit
    assert load_recipe({"merge_method": "slerp", "base_model": "b", "parameters": {"t": 0.5},
                        "slices": [{"sources": src, "base_model": "x"}]}).slices[0].base_model \
        == "x"
    assert problems({"merge_method": "slerp", "base_model": "b", "parameters": {"t": 0.5},
                     "slices": [{"sources": src, "base_model": "y"}]}) == [
        "slices[0] has no source from slices[0].base_model 'y' (the base's tensors are read "
        "from the slice's sources: add it as one)"]


def test_a_slice_base_model_is_that_slices_base(family):
    """Layers of a slice naming its own base are task vectors from that base, bit for bit
    the layers a one-slice recipe with that base gives."""
    base, (ft1, ft2, ft3) = family["base"], family["ft"]
    w = {"weight": 0.5}
    two = kinmerge.merge_to_memory({
        "merge_method": "task_arithmetic", "base_model": base, "slices": [
            {"sources": [{"model": base, "layer_range": [0, 2]},
                         {"model": ft1, "layer_range": [0, 2], "parameters": w}]},
            {"base_model": ft2, "sources": [
                {"model": ft2, "layer_range": [2, 3]},
                {"model": ft3, "layer_range": [2, 3], "parameters": w}]}]}).tensors
    alone = kinmerge.merge_to_memory({
        "merge_method": "task_arithmetic", "base_model": ft2, "slices": [{"sources": [
            {"model": ft2, "layer_range": [2, 3]},
            {"model": ft3, "layer_range": [2, 3], "parameters": w}]}]}).tensors
    from kinmerge.io.reader import ModelReader
    with ModelReader(ft2) as b, ModelReader(ft3) as c:
        for name in [n for n in alone if n.startswith("model.layers.0.")]:
            here = name.replace("layers.0.", "layers.2.")
            assert torch.equal(two[here], alone[name]), here
            src = name.replace("layers.0.", "layers.2.")
            want = b.get(src) + 0.5 * (c.get(src) - b.get(src))
            torch.testing.assert_close(two[here], want, rtol=0, atol=1e-6)


def test_modules_are_refused_with_the_reason():
    got = problems({"merge_method": "linear", "modules": {
        "text_decoder": {"models": [{"model": "a", "parameters": {"weight": 1}}]},
        "vision_tower": {"models": [{"model": "a", "parameters": {"weight": 1}}]}}})
    assert len(got) == 1 and got[0].startswith(
        "modules: ('text_decoder', 'vision_tower') is not supported: mergekit merges each "
        "module of a multi-module model")
    assert "merging the modules as one would pair layers of different modules" in got[0]
    assert "Write the merge with models: or slices:" in got[0]
