"""Issue 18 (the new methods' numbers, absurd outputs): every parameter declares its type and
range in the registry, checked by `validate`/plan before any tensor is read; a finite but
absurd result and an input NaN the method dropped are named. Ends with a fuzzer of the 8
newer methods' parameters through a real (tiny) merge."""
from __future__ import annotations

import logging
import math

import pytest
import torch
from hypothesis import given, strategies as st
from safetensors.torch import load_file, save_file

import kinmerge
from kinmerge.core import nonfinite
from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.io.reader import ModelReader
from kinmerge.methods import REGISTRY
from kinmerge.methods.registry import MAX_ITERATIONS
from kinmerge.tokenizer.spec import MAX_PAD_TO_MULTIPLE_OF
from kinmerge.zoo.synthetic import synthetic_family, synthetic_llama

from fuzz_kit import fuzz, time_limit
from inputs_kit import TINY, assert_clean_failure, cli, recipe, tiny  # noqa: F401

NEW = ["nuslerp", "multislerp", "karcher", "sce", "nearswap", "arcee_fusion", "ram",
       "ramplus_tl"]


def load_problems(r: dict) -> list[str]:
    with pytest.raises(RecipeError) as e:
        kinmerge.load_recipe(r)
    return e.value.problems


def two(method: str, base: bool = True, weights=(1.0, 1.0), **params) -> dict:
    r = {"merge_method": method, "parameters": params,
         "models": [{"model": m, "parameters": {"weight": w}} for m, w in zip("ab", weights)]}
    if base:
        r["base_model"] = "base"
    return r


@pytest.mark.parametrize("r, text", [
    (two("karcher", False, max_iter=1e18, tol=1e-5),
     f"parameters.max_iter: max_iter must be in [1, {MAX_ITERATIONS}], got 1e+18"),
    (two("karcher", False, tol=0), "parameters.tol: tol must be in (0, 1], got 0"),
    (two("karcher", False, max_iter=[1, 50]),
     "parameters.max_iter: expected one whole number (a count, not a gradient or a filter "
     "list), got [1, 50]"),
    (two("karcher", False, max_iter=[{"filter": "mlp", "value": 5}, {"value": 10}]),
     "parameters.max_iter: expected one whole number (a count, not a gradient or a filter "
     "list)"),
    (two("karcher", False, max_iter=2.5), "parameters.max_iter: expected one whole number"),
    (two("multislerp", False, eps=-1), "parameters.eps: eps must be in (0, 1], got -1"),
    (two("ramplus_tl", r=1e9, alpha=1e9),
     "parameters.r: r must be in [0, 10], got 1000000000.0"),
    (two("ramplus_tl", epsilon=3e38), "parameters.epsilon: epsilon must be in [0, 1], got 3e+38"),
    (two("ram", epsilon=-1), "parameters.epsilon: epsilon must be in [0, 1], got -1"),
    (two("sce", select_topk=0), "parameters.select_topk: select_topk must be in (0, 1], got 0"),
    (two("sce", select_topk=1.5), "select_topk must be in (0, 1], got 1.5"),
    ({"merge_method": "nearswap", "base_model": "base", "parameters": {"t": -1},
      "models": [{"model": "base"}, {"model": "a"}]},
     "parameters.t: t must be in [0, inf), got -1"),
    ({"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1}}],
      "tokenizer": {"pad_to_multiple_of": 50_000_000}},
     f"tokenizer.pad_to_multiple_of must be a whole number in [1, {MAX_PAD_TO_MULTIPLE_OF}], "
     "got 50000000"),
])
def test_method_numbers_are_refused_before_any_tensor_is_read(r, text):
    """The recipes name models that do not exist: the refusal comes from the registry's
    declarations alone, before any model is opened."""
    got = load_problems(r)
    assert any(text in p for p in got), got


def test_every_new_method_declares_a_range_for_each_number():
    """One place: each numeric parameter of the 8 newer methods has a declared range (the
    per-model `weight`s are bounded by the method's own check or any finite number)."""
    for name in NEW:
        for p in REGISTRY[name].params:
            if p.kind is bool or p.name == "weight" or not p.effect:
                continue
            assert str(p.range) != "any finite number", (name, p.name)
    assert REGISTRY["karcher"].param("max_iter").kind is int


def test_nuslerp_weights_summing_to_zero(tiny):
    r = recipe(tiny["root"], tiny["base"], tiny["ft"], method="nuslerp")
    data = {"merge_method": "nuslerp", "models": [
        {"model": str(tiny["base"]), "parameters": {"weight": 1.0}},
        {"model": str(tiny["ft"]), "parameters": {"weight": -1.0}}]}
    with pytest.raises(KinmergeError) as e:
        kinmerge.make_plan(data)
    assert "nuslerp's weights [1.0, -1.0] sum to 0, so t = w2/(w1+w2) is undefined" in str(e.value)
    r.write_text(__import__("yaml").safe_dump(data))
    assert_clean_failure(cli("merge", r, tiny["root"] / "out"), "sum to 0")
    assert not (tiny["root"] / "out").exists()
    data["models"][1]["parameters"]["weight"] = 1.0  # the control: halfway is fine
    kinmerge.merge_to_memory(data)


def test_karcher_max_iter_through_the_cli(tiny):
    r = recipe(tiny["root"], tiny["base"], tiny["ft"], method="karcher",
               parameters={"max_iter": 1e18, "tol": 0})
    out = tiny["root"] / "out"
    assert_clean_failure(cli("merge", r, out), "max_iter must be in [1, 1000], got 1e+18",
                         "tol must be in (0, 1], got 0")
    assert_clean_failure(cli("validate", r), "max_iter must be in [1, 1000]")
    assert not out.exists()


def test_karcher_max_iter_reaches_the_function_as_an_int(tiny):
    seen = []
    fn = REGISTRY["karcher"].fn

    def spy(tensors, base=None, **kw):
        seen.append(kw["max_iter"])
        return fn(tensors, base, **kw)
    object.__setattr__(REGISTRY["karcher"], "fn", spy)
    try:
        kinmerge.merge_to_memory({"merge_method": "karcher", "parameters": {"max_iter": 7.0},
                                  "models": [{"model": str(tiny["base"])},
                                             {"model": str(tiny["ft"])}]})
    finally:
        object.__setattr__(REGISTRY["karcher"], "fn", fn)
    assert seen and all(type(v) is int and v == 7 for v in seen)


# --- absurd outputs and dropped NaN -----------------------------------------------------------

def test_absurd_output_norm_is_named_once_per_merge(tiny, caplog):
    r = {"merge_method": "task_arithmetic", "base_model": str(tiny["base"]),
         "models": [{"model": str(tiny["ft"]), "parameters": {"weight": 1e4}}]}
    with caplog.at_level(logging.WARNING):
        kinmerge.merge_to_memory(r)
    lines = [rec.getMessage() for rec in caplog.records if "absurd output norms" in rec.getMessage()]
    assert len(lines) == 1
    assert "merged tensor(s) have a norm over 10x the largest input norm" in lines[0]
    assert "model.layers.0.mlp.up_proj.weight (" in lines[0]
    assert "--allow-norm-growth" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # silenced on request
        kinmerge.merge_to_memory(r, allow_norm_growth=True)
    assert "absurd" not in caplog.text
    r["models"][0]["parameters"]["weight"] = 1.0  # the control: an ordinary merge says nothing
    with caplog.at_level(logging.WARNING):
        kinmerge.merge_to_memory(r)
    assert "absurd" not in caplog.text


def test_absurd_warning_through_the_cli_and_its_silencer(tiny):
    r = recipe(tiny["root"], tiny["base"], tiny["ft"])
    text = r.read_text().replace("weight: 1.0", "weight: 10000.0")
    r.write_text(text)
    res = cli("merge", r, tiny["root"] / "o1", "--no-progress")
    assert res.exit_code == 0 and "absurd output norms" in res.output, res.output
    res = cli("merge", r, tiny["root"] / "o2", "--no-progress", "--allow-norm-growth")
    assert res.exit_code == 0 and "absurd output norms" not in res.output, res.output


def test_norm_ratio_rule():
    assert nonfinite.absurd("t", 10.0, [1.0, 0.5]) is None  # exactly 10x: not absurd
    a = nonfinite.absurd("t", 10.5, [1.0, float("nan")])  # NaN inputs do not count
    assert a is not None and a.describe() == "t (10.5 vs 1, 10.5x)"
    assert nonfinite.absurd("t", 1.0, [0.0]).ratio == math.inf  # from zeros to something
    assert nonfinite.norm(torch.full((4,), 3e38)) == (pytest.approx(6e38), True)  # overflow
    n, ok = nonfinite.norm(torch.tensor([1.0, float("inf")]))
    assert not ok and n == math.inf


def test_nan_input_dropped_by_ties_is_named(tiny, caplog):
    ft2 = synthetic_llama(tiny["root"] / "models" / "ft2", base=tiny["base"], seed=2, **TINY)
    name = "model.layers.1.mlp.up_proj.weight"
    sd = load_file(ft2 / "model.safetensors")
    sd[name].view(-1)[0] = float("nan")
    save_file(sd, ft2 / "model.safetensors", metadata={"format": "pt"})
    r = {"merge_method": "ties", "base_model": str(tiny["base"]), "models": [
        {"model": str(tiny["ft"]), "parameters": {"weight": 1.0, "density": 0.5}},
        {"model": str(ft2), "parameters": {"weight": 1.0, "density": 0.5}}]}
    with caplog.at_level(logging.WARNING):
        merged = kinmerge.merge_to_memory(r)
    assert torch.isfinite(merged.tensors[name]).all()  # TIES dropped the NaN ...
    assert ("input models hold NaN/Inf in 1 tensor(s) whose merged result is finite"
            in caplog.text)  # ... and it is still said, naming tensor and input
    assert f"{name} (in {ft2} (1 NaN, 0 Inf))" in caplog.text


# --- the fuzzer ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    return synthetic_family(tmp_path_factory.mktemp("methodfuzz"), **TINY)


number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 2),
                   st.integers(-3, 2000), st.sampled_from([0, 1, 1e-9, 1e9, 1e18, 3e38, -1]))
value = st.one_of(number, number, st.lists(number, min_size=1, max_size=3),
                  st.lists(st.fixed_dictionaries({"filter": st.sampled_from(["mlp", "attn"]),
                                                  "value": number}), min_size=1, max_size=2)
                  .map(lambda f: f + [{"value": 0.5}]), st.booleans(), st.text(max_size=3))


@fuzz(200, 4000)
@given(data=st.data())
@time_limit()
def test_fuzz_new_methods_parameters(fam, data):
    """Any numbers for the 8 newer methods' parameters: a KinmergeError, or a finite merge
    whose every tensor's norm is within NORM_RATIO of its inputs' unless the warning said so."""
    base, fts = fam
    m = REGISTRY[data.draw(st.sampled_from(NEW))]
    params = {p.name: data.draw(value) for p in m.params
              if p.scope == "global" and data.draw(st.booleans())}
    weight = lambda: data.draw(value) if data.draw(st.booleans()) else 1.0  # noqa: E731
    if m.n_models == 1 or m.with_base:
        models = [{"model": base}, {"model": fts[0], "parameters": {"weight": weight()}}]
    else:
        models = [{"model": f, "parameters": {"weight": weight()}} for f in fts]
    if not m.param("weight"):
        for e in models:
            e.pop("parameters", None)
    r = {"merge_method": m.name, "base_model": base, "models": models, "parameters": params}
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: said.append(rec.getMessage())  # type: ignore[method-assign]
    logging.getLogger("kinmerge.core.nonfinite").addHandler(handler)
    try:
        merged = kinmerge.merge_to_memory(r)
    except KinmergeError as e:
        assert str(e)
        return
    finally:
        logging.getLogger("kinmerge.core.nonfinite").removeHandler(handler)
    assert all(torch.isfinite(t).all() for t in merged.tensors.values())
    readers = [ModelReader(x) for x in [base, *fts]]
    for name, t in merged.tensors.items():  # nothing absurd written silently
        top = max(float(torch.linalg.vector_norm(rd.get(name).double())) for rd in readers)
        if float(torch.linalg.vector_norm(t.double())) > 10 * top * (1 + 1e-3):
            assert any("absurd output norms" in s and (f"{name} (" in s or "more" in s)
                       for s in said), name  # named, or among the "... and N more"
