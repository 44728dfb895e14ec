"""Loading recipes: YAML files, strings, dicts; every problem reported at once."""
import pytest

from kinmerge.errors import RecipeError
from kinmerge.core.recipe import load_recipe

TIES = """
merge_method: ties
base_model: base
models:
  - model: base
  - model: a
    parameters: {weight: 1, density: [1, 0.7, 0.1]}
  - model: b
    parameters: {weight: 0.5, density: 0.5}
parameters: {normalize: true}
dtype: bfloat16
"""


def test_load_from_string_file_and_dict(tmp_path):
    r = load_recipe(TIES)
    assert r.merge_method == "ties" and r.models[1].parameters["density"] == [1, 0.7, 0.1]
    f = tmp_path / "r.yml"
    f.write_text(TIES)
    assert load_recipe(f) == r == load_recipe(str(f)) == load_recipe(r.model_dump())
    assert load_recipe(r) is r


def test_round_trip_yaml():
    r = load_recipe(TIES)
    assert load_recipe(r.to_yaml()) == r


def test_model_refs_base_first_each_once():
    assert load_recipe(TIES).model_refs() == ["base", "a", "b"]


def problems(source) -> list[str]:
    with pytest.raises(RecipeError) as e:
        load_recipe(source)
    return e.value.problems


def test_unknown_key_suggests_the_right_one(tmp_path):
    f = tmp_path / "typo.yml"
    f.write_text(TIES.replace("base_model", "base_modle"))
    with pytest.raises(RecipeError) as e:
        load_recipe(f)
    assert "unknown key 'base_modle' (did you mean 'base_model'?)" in str(e.value)
    assert str(f) in str(e.value)


def test_every_problem_at_once():
    ps = problems({"merge_method": "ties", "models": [
        {"model": "a", "parameters": {"wieght": 1}},
        {"model": "b", "parameters": {"weight": 1, "density": "half"}}],
        "parameters": {"temperature": 0.5}, "dtype": "bf17"})
    text = "\n".join(ps)
    assert len(ps) == 6
    assert "ties needs base_model" in text
    assert "unknown parameter 'temperature' for ties" in text
    assert "unknown parameter 'wieght' for ties (did you mean 'weight'?" in text
    assert "models[1].parameters.density: expected a number" in text
    assert "models[0] (a): missing required parameter 'weight' of ties" in text
    assert "dtype: unknown dtype 'bf17'" in text


def test_slerp_needs_exactly_two_models():
    ps = problems({"merge_method": "slerp", "base_model": "a", "parameters": {"t": 0.5},
                   "models": [{"model": "a"}, {"model": "b"}, {"model": "c"}]})
    assert ps == ["slerp takes exactly 2 models, one of them the base_model; got 3 model(s)"]


def test_global_parameter_at_model_level_is_an_error():
    ps = problems({"merge_method": "slerp", "base_model": "a", "parameters": {"t": 0.5},
                   "models": [{"model": "a"}, {"model": "b", "parameters": {"t": 0.1}}]})
    assert ps == ["models[1].parameters: 't' is a global parameter of slerp; put it under the "
                  "top-level or the slice's `parameters`"]


def test_models_and_slices_are_exclusive():
    assert problems({"merge_method": "linear"}) == ["give exactly one of `models` or `slices`"]


def test_bad_layer_range_and_unequal_slice_lengths():
    ps = problems({"merge_method": "linear", "slices": [{"sources": [
        {"model": "a", "layer_range": [4, 2], "parameters": {"weight": 1}},
        {"model": "b", "layer_range": [0, 3], "parameters": {"weight": 1}}]}]})
    assert "slices[0].sources[0].layer_range [4, 2]: need 0 <= start < end" in ps
    assert "slices[0]: all sources need layer ranges of one length, got [-2, 3]" in ps


def test_invalid_yaml_names_the_line(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text("merge_method: ties\nmodels: [\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(f)


def test_missing_file():
    with pytest.raises(RecipeError, match="file not found: nowhere.yml"):
        load_recipe("nowhere.yml")


def test_typo_inside_a_list_of_nested_models():
    ps = problems({"merge_method": "passthrough", "slices": [
        {"sources": [{"model": "a", "layer_rnage": [0, 2]}]}]})
    assert "unknown key 'slices[0].sources[0].layer_rnage' (did you mean 'layer_range'?)" in ps


def test_a_recipe_must_be_a_mapping(tmp_path):
    f = tmp_path / "list.yml"
    f.write_text("- merge_method: ties\n")
    with pytest.raises(RecipeError, match="a recipe is a YAML mapping of keys, got list"):
        load_recipe(f)
