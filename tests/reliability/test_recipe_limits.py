"""Recipes read from strangers: size, depth, alias and encoding limits, each a clear error."""
from __future__ import annotations

import time

import pytest
import yaml

from kinmerge.io import yamlload
from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.core.recipe import load_recipe

LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(8))


def problems(source) -> list[str]:
    with pytest.raises(RecipeError) as e:
        load_recipe(source)
    return e.value.problems


def test_billion_laughs_is_refused_at_once():
    assert len(LAUGHS) < 400
    t = time.perf_counter()
    with pytest.raises(yamlload.YamlError) as e:
        yamlload.load(LAUGHS)
    assert time.perf_counter() - t < 0.5
    assert str(e.value) == ("aliases stand for more than 100,000 YAML nodes (at *'e', line 6): "
                            "nested anchors that expand exponentially (a 'billion laughs') "
                            "are refused")


@pytest.mark.parametrize("where", ["merge_method", "chat_template", "parameters",
                                   "weight"])
def test_alias_bomb_under_any_recipe_key(tmp_path, where):
    bomb = "".join(f"  - &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]\n" if i else
                   "  - &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                   for i in range(9))
    body = {"merge_method": "merge_method: *x8\n",
            "chat_template": "merge_method: linear\nchat_template: *x8\n",
            "parameters": "merge_method: linear\nparameters: {weight: *x8}\n",
            "weight": "merge_method: linear\nmodels:\n  - model: a\n    parameters:\n"
                      "      weight: *x8\n"}[where]
    f = tmp_path / "bomb.yml"
    f.write_text("anchors:\n" + bomb + body)
    t = time.perf_counter()
    (p,) = problems(f)
    assert time.perf_counter() - t < 1
    assert p.startswith("not valid YAML: aliases stand for more than 100,000 YAML nodes")


def test_an_anchor_reused_a_few_times_is_fine():
    text = ("merge_method: ties\nbase_model: b\nmodels:\n"
            "  - model: x\n    parameters: {weight: 1, density: &d [0.2, 0.5, 0.9]}\n"
            "  - model: y\n    parameters: {weight: 1, density: *d}\n")
    r = load_recipe(text)
    assert r.models[1].parameters["density"] == [0.2, 0.5, 0.9]


def test_large_structure_under_limits_has_a_short_error():
    """A legal but large wrong-typed value: the error line stays short."""
    text = ("merge_method: linear\nchat_template: &big [" + ", ".join(["x" * 50] * 3000)
            + "]\nmodels: [{model: a, parameters: {weight: 1}}]\n")
    (p,) = problems(text)
    assert p.startswith("chat_template: Input should be a valid string (got ['xxxx")
    assert len(p) < 200


def test_deep_nesting_is_a_clear_error():
    (p,) = problems("merge_method: linear\nmodels: " + "[" * 10000 + "\n")
    assert p.startswith("not valid YAML: while increasing flow level\n"
                        "exceeded maximum nesting depth")
    (p,) = problems("merge_method: linear\nparameters:\n" + "".join(
        "  " * (i + 1) + f"k{i}:\n" for i in range(80)) + "  " * 81 + "v: 1\n")
    assert p == "not valid YAML: YAML nested more than 64 levels deep at line 66"


def test_non_utf8_file(tmp_path):
    f = tmp_path / "latin1.yml"
    f.write_bytes("merge_method: linear\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(RecipeError) as e:
        load_recipe(f)
    assert e.value.problems == ["not UTF-8 text: byte 0xe9 at line 2 (offset 26)"]
    assert "fix: save the file as UTF-8" in str(e.value)


def test_utf8_bom_is_accepted(tmp_path):
    f = tmp_path / "bom.yml"
    f.write_bytes(b"\xef\xbb\xbfmerge_method: linear\nmodels: [{model: a, "
                  b"parameters: {weight: 1}}]\n")
    assert load_recipe(f).merge_method == "linear"


def test_file_too_large(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlload, "MAX_BYTES", 1000)
    f = tmp_path / "big.yml"
    f.write_text("merge_method: linear\n" + "#" * 2000 + "\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(f)
    assert e.value.problems == [f"the file is larger than 0 MiB, the limit for a recipe"]


def test_node_count_limit(monkeypatch):
    monkeypatch.setattr(yamlload, "MAX_NODES", 100)
    with pytest.raises(yamlload.YamlError, match="more than 100 YAML nodes"):
        yamlload.load("a: [" + ", ".join(["1"] * 200) + "]\n")


def test_directory_and_fifo_are_not_read(tmp_path):
    import os
    assert problems(tmp_path) == [f"not a regular file: {tmp_path}"]
    fifo = tmp_path / "pipe.yml"
    os.mkfifo(fifo)
    assert problems(fifo) == [f"not a regular file: {fifo}"]


def test_duplicate_keys(caplog):
    (p,) = problems("merge_method: linear\nparameters: {normalize: true}\n"
                    "models: [{model: a, parameters: {weight: 1}}]\n"
                    "parameters: {normalize: false}\n")
    assert p == ("not valid YAML: duplicate key 'parameters' at lines 2 and 4 with different "
                 "values (YAML forbids duplicate keys; mergekit silently keeps the last): "
                 "delete one")
    r = load_recipe("merge_method: linear\ndtype: float32\n"
                    "models: [{model: a, parameters: {weight: 1}}]\ndtype: float32\n")
    assert r.dtype == "float32"
    assert "duplicate key 'dtype' at lines 2 and 4 (same value; the second is ignored)" \
        in caplog.text


@pytest.mark.parametrize("text, why", [
    ("a: &a [*a]\n", "alias *'a' at line 1 refers to the node it is inside"),
    ("a: *nowhere\n", "alias *'nowhere' at line 1 has no anchor before it"),
    ("a: !!python/object/apply:os.system [ls]\n",
     "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' at line 1"),
    ("a: !!set {x}\n", "unsupported YAML tag 'tag:yaml.org,2002:set' at line 1"),
    ("? [a]\n: 1\n", "a mapping key must be a plain value, not a collection, at line 1"),
    ("a: 1\n---\nb: 2\n", "expected one YAML document, found 2 (separated by `---`)"),
])
def test_refused_yaml_shapes(text, why):
    with pytest.raises(yamlload.YamlError) as e:
        yamlload.load(text)
    assert str(e.value) == why


def test_values_match_safe_load():
    text = ("a: 1e-5\nb: .inf\nc: 0x10\nd: ~\ne: [yes, no, on, 'true']\nf: 1_000\n"
            "base: &b {x: 1, y: 2}\ng: {<<: *b, y: 3}\nh: !!str 12\n")
    assert yamlload.load(text) == yaml.safe_load(text)


def big_recipe() -> str:
    lines = ["merge_method: passthrough", "slices:"]
    i, size = 0, 0
    while size < 2_800_000:
        line = (f"  - sources:\n      - model: models/m{i % 7}\n        layer_range: "
                f"[{i % 30}, {i % 30 + 1}]\n        parameters: {{scale: [0.5, 0.7, 0.9]}}")
        lines.append(line)
        size += len(line)
        i += 1
    return "\n".join(lines) + "\n"


def test_a_2_8_mb_recipe_parses_fast():
    """As fast as libyaml's event stream allows (the C `safe_load` is 2x slower, the pure
    Python one 20x); bounded against the bare event loop so a loaded machine is no excuse."""
    text = big_recipe()
    t = time.perf_counter()
    loader = yamlload.C_LOADER(text)
    while loader.get_event() is not None:
        pass
    events = time.perf_counter() - t
    t = time.perf_counter()
    data = yamlload.load(text)
    took = time.perf_counter() - t
    assert len(data["slices"]) > 25_000
    assert took < max(2.0, 4 * events), (took, events)


def test_long_values_and_many_problems_are_cut_short():
    (p,) = problems({"merge_method": "x" * 100_000, "models": []})
    assert p.startswith("unknown merge_method 'xxxx") and len(p) < 600
    ps = problems({"merge_method": "linear", "models": [
        {"model": f"m{i}", "parameters": {"weight": 1, f"bogus{i}": 1}} for i in range(500)]})
    assert len(ps) == 51 and ps[-1] == "... and 450 more"
    ps = problems({"merge_method": "linear", "models": [{"modle": i} for i in range(500)]})
    assert len(ps) == 51 and ps[-1].startswith("... and ")


def test_pure_python_fallback_gives_the_same_values(monkeypatch):
    """Where PyYAML was built without libyaml, the same loop runs on its Python parser."""
    text = "a: &g [0.1, 0.5]\nb: *g\nc: {x: 1e-5, y: ~}\n"
    want = yamlload.load(text)
    monkeypatch.setattr(yamlload, "_Loader", yaml.SafeLoader)
    assert yamlload.load(text) == want
    with pytest.raises(yamlload.YamlError, match="billion laughs"):
        yamlload.load(LAUGHS)


@pytest.mark.parametrize("seed, text", [
    (-1, "seed: Input should be greater than or equal to 0 (got -1)"),
    (2**32, "seed: Input should be less than or equal to 4294967295 (got 4294967296)"),
    (1.5, "seed: Input should be a valid integer"),
])
def test_recipe_seed_is_bounded_like_every_config_seed(seed, text):
    """A recipe's seed is one from 0 to 2**32-1, as the search configs' seeds (and the numpy
    seed mergekit hands it to) are; the merge call and the CLIs bound theirs the same."""
    from kinmerge.core.recipe import load_recipe

    r = {"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1}}],
         "seed": seed}
    with pytest.raises(KinmergeError) as e:
        load_recipe(r)
    assert text in e.value.message
    assert load_recipe({**r, "seed": 2**32 - 1}).seed == 2**32 - 1


def test_merge_call_and_cli_refuse_a_seed_out_of_range(tmp_path):
    from click.testing import CliRunner

    import kinmerge
    from kinmerge.cli import main

    r = {"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1}}]}
    with pytest.raises(KinmergeError) as e:
        kinmerge.merge(r, tmp_path / "out", seed=-3)
    assert e.value.message.startswith("seed must be a whole number from 0 to 4294967295, not -3")
    assert not (tmp_path / "out").exists()
    f = tmp_path / "r.yml"
    f.write_text("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n")
    got = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "o"), "--seed", "-1"])
    assert got.exit_code == 2 and "-1 is not in the range 0<=x<=4294967295" in got.output
