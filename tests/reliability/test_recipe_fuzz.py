"""Recipe fuzzer: random recipes (dicts, and YAML text) -> load_recipe -> plan -> an in-memory
merge of a tiny model family. Whatever the input, the only exception allowed out is a
KinmergeError (one clear message); anything else is a bug.

A few hundred examples in the default suite; thousands with KINMERGE_SLOW=1.
"""
from __future__ import annotations

import math
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinmerge
from kinmerge.errors import KinmergeError
from kinmerge.methods import REGISTRY
from kinmerge.methods.registry import MERGEKIT_PARAMETERS
from kinmerge.core.dtypes import DTYPES
from kinmerge.zoo.synthetic import synthetic_llama

SLOW = os.environ.get("KINMERGE_SLOW") == "1"
EXAMPLES = 3000 if SLOW else 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not SLOW,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    """A base and two fine-tunes, 2 layers of 8 (merges take milliseconds), and a path that
    does not exist."""
    root = tmp_path_factory.mktemp("fuzz_family")
    kw = dict(layers=2, hidden=8, intermediate=8, vocab=16, heads=2)
    base = synthetic_llama(root / "base", seed=0, **kw)
    fts = [synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **kw)
           for i in (1, 2)]
    return [str(base)] + [str(f) for f in fts] + [str(root / "missing")]


def numbers() -> st.SearchStrategy:
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.floats(-2, 2), st.integers(-3, 3), st.booleans(),
                     st.sampled_from([0.0, 0.5, 1.0, 1e-9, 1e308, -0.0]))


def values() -> st.SearchStrategy:
    """What a parameter may be given: numbers, gradients, filter lists, and junk."""
    scalar = st.one_of(numbers(), st.text(max_size=6), st.none(),
                       st.sampled_from(["1e-5", "0.5", "nan", ".inf"]))
    gradient = st.lists(numbers(), min_size=0, max_size=5)
    entry = st.fixed_dictionaries(
        {"value": st.one_of(numbers(), gradient)},
        optional={"filter": st.one_of(st.sampled_from(["mlp", "self_attn", "*", "norm"]),
                                      st.text(max_size=4), st.integers())})
    junk = st.recursive(scalar, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        max_leaves=8)
    return st.one_of(numbers(), gradient, st.lists(entry, max_size=3), junk)


def params() -> st.SearchStrategy:
    keys = st.one_of(st.sampled_from(sorted(MERGEKIT_PARAMETERS)), st.text(max_size=8))
    return st.one_of(st.none(), st.dictionaries(keys, values(), max_size=4))


@st.composite
def plausible(draw, paths: list[str]) -> dict:
    """A recipe a user might write: a real method, existing models, its own parameters with
    edge values (0, 1, negative, tiny, huge, NaN now and then)."""
    m = REGISTRY[draw(st.sampled_from(sorted(REGISTRY)))]
    base, others = paths[0], paths[1:3]
    edge = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 0.5, 1e-6, 1e300]),
                     st.sampled_from([float("nan"), float("inf")]).filter(
                         lambda _: draw(st.integers(0, 9)) == 0))
    value = st.one_of(edge, st.lists(edge, min_size=1, max_size=4), st.lists(
        st.fixed_dictionaries({"filter": st.sampled_from(["mlp", "self_attn", "norm"]),
                               "value": edge}), min_size=1, max_size=2).map(
        lambda fs: fs + [{"value": 0.5}]))

    def block(scope: str) -> dict:
        out = {}
        for p in (p for p in m.params if p.scope == scope):
            if p.required or draw(st.integers(0, 3)):
                out[p.name] = draw(st.booleans() if p.kind is bool else value)
        return out

    r: dict = {"merge_method": m.name, "base_model": base, "parameters": block("global")}
    if m.name == "passthrough" or draw(st.integers(0, 3)) == 0:
        r["slices"] = [{"sources": [{"model": x, "layer_range": [a, a + 1],
                                     "parameters": block("model")}
                                    for x in ([base] if m.n_models == 1 else [base] + others)]}
                       for a in draw(st.lists(st.integers(0, 1), min_size=1, max_size=3))]
    else:
        members = others[:1] if m.n_models == 1 else others[:draw(st.integers(1, 2))]
        r["models"] = ([{"model": base}] if m.with_base or draw(st.booleans()) else [])
        r["models"] += [{"model": x, "parameters": block("model")} for x in members]
    r.update(draw(st.fixed_dictionaries({}, optional={
        "dtype": st.sampled_from(["float32", "bfloat16", "float16"]),
        "out_dtype": st.sampled_from(["float32", "bfloat16"]),
        "tokenizer_source": st.just("base"), "seed": st.integers(0, 2**40),
        "kinmerge": st.fixed_dictionaries({"topk": st.sampled_from(["stable", "mergekit"])}),
    })))
    return r


@st.composite
def hostile(draw, paths: list[str]) -> dict:
    """Anything shaped like a recipe: junk methods, keys, values and layer ranges."""
    model = st.sampled_from(paths)
    method = draw(st.one_of(st.sampled_from(sorted(REGISTRY)), st.text(max_size=8)))
    r: dict = {"merge_method": method}
    if draw(st.booleans()):
        r["base_model"] = draw(st.one_of(model, st.none()))
    if draw(st.integers(0, 4)):
        r["models"] = draw(st.lists(st.fixed_dictionaries(
            {"model": model}, optional={"parameters": params()}), max_size=4))
    else:
        rng = st.lists(st.integers(-1, 3), min_size=2, max_size=2)
        source = st.fixed_dictionaries({"model": model, "layer_range": rng},
                                        optional={"parameters": params()})
        r["slices"] = draw(st.lists(st.fixed_dictionaries(
            {"sources": st.lists(source, max_size=3)}, optional={"parameters": params()}),
            max_size=3))
    optional = {"parameters": params(),
                "dtype": st.one_of(st.sampled_from(sorted(DTYPES)), st.text(max_size=5)),
                "out_dtype": st.sampled_from(["float32", "bfloat16", "float16", "int8"]),
                "tokenizer_source": st.one_of(st.sampled_from(["base", "union"]), model),
                "seed": st.one_of(st.integers(-5, 2**70), st.floats()),
                "kinmerge": st.one_of(st.fixed_dictionaries(
                    {"topk": st.sampled_from(["stable", "mergekit", "fast"])}), st.text()),
                "chat_template": st.one_of(st.text(max_size=20), st.integers()),
                "junk": values()}
    for key, strategy in optional.items():
        if draw(st.integers(0, 5)) == 0:
            r[key if key != "junk" else draw(st.text(max_size=6))] = draw(strategy)
    return r


def recipes(paths: list[str]) -> st.SearchStrategy:
    return st.one_of(plausible(paths), plausible(paths), hostile(paths))


def run(source) -> None:
    """The property: a recipe merges, or is refused with a KinmergeError."""
    try:
        recipe = kinmerge.load_recipe(source)
        merged = kinmerge.merge_to_memory(recipe)
    except KinmergeError as e:
        assert str(e)  # a message, not an empty error
        return
    assert merged.tensors and merged.config


@FUZZ
@given(data=st.data())
def test_random_recipe_dicts(models, data):
    run(data.draw(recipes(models)))


YAML_CHARS = st.sampled_from(list("ab:-[]{}&*!|>'\"#,?%@`\n  \t0.5e") +
                             ["merge_method", "models", "parameters", "weight", "&a", "*a",
                              "<<", "!!set", "!!python/object", "---", "\x00", "\xe9", "..."])


@FUZZ
@given(text=st.lists(YAML_CHARS, max_size=60).map("".join))
def test_random_yaml_text(text):
    run("merge_method: linear\n" + text + "\n")


def mutate(text: str, data) -> str:
    """A valid recipe's YAML with a few random edits (a character dropped, one inserted)."""
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + data.draw(YAML_CHARS) + text[i:]
    return text


@FUZZ
@given(data=st.data())
def test_mutated_recipe_yaml(models, data):
    recipe = data.draw(recipes(models))
    try:
        text = yaml.safe_dump(recipe, sort_keys=False)
    except yaml.YAMLError:
        return
    run(mutate(text, data) + "\n")


def test_a_valid_recipe_merges(models):
    """The fuzzer's recipes can succeed: a sanity check that the family merges."""
    r = {"merge_method": "ties", "base_model": models[0], "models": [
        {"model": models[1], "parameters": {"weight": 1, "density": 0.5}},
        {"model": models[2], "parameters": {"weight": 0.5, "density": [1, 0.2]}}]}
    merged = kinmerge.merge_to_memory(r)
    assert all(math.isfinite(float(t.float().abs().max())) for t in merged.tensors.values())
