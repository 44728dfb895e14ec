"""lineage.json fuzzer: a model folder's lineage.json (and a run folder's family.json) is a
file users hand kinmerge (a model downloaded with its family tree, a run folder copied from a
colleague). Random and mutated files, valid JSON of the wrong shape, records whose parents form
cycles or point nowhere, NaN and infinite scores, run through what reads them: `lineage.read`,
`kinmerge lineage show` (text and --json), `kinmerge lineage graph` of the model and of the
folder around it (where a family.json adds a run's records) and a merge that takes the model
as a parent.

Whatever the input: `read` returns a Lineage or raises ModelLoadError; the commands exit 0 or
2 (one error, no traceback); a merge never fails because of a parent's lineage (it warns and
treats that parent as a root); no example runs past its time limit.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import kinmerge
from kinmerge import lineage as lin
from kinmerge.cli import main
from kinmerge.errors import ModelLoadError
from kinmerge.zoo.synthetic import synthetic_llama

from fuzz_kit import fuzz, limited
from inputs_kit import TINY

IDS = ["m-a", "m-b", "root-c", "m-d"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("lineage-fuzz")
    base = synthetic_llama(root / "base", seed=0, **TINY)
    ft = synthetic_llama(root / "ft", base=base, seed=1, **TINY)
    child = kinmerge.merge({"merge_method": "linear", "models": [
        {"model": str(base), "parameters": {"weight": 0.5}},
        {"model": str(ft), "parameters": {"weight": 0.5}}]}, root / "child")
    return {"root": root, "base": base, "child": child,
            "valid": (child / "lineage.json").read_text()}


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def records(draw, rid=None):
    """A lineage record, mostly well-formed: parents among a few ids (cycles, self-parents,
    unknown ids), scores that may be NaN or infinite, now and then a field of the wrong type."""
    rec = {"id": rid or draw(st.sampled_from(IDS)), "name": draw(st.text(max_size=12)),
           "parents": draw(st.lists(st.sampled_from(IDS + ["m-unknown"]), max_size=3)),
           "scores": draw(st.dictionaries(st.sampled_from(["search", "heldout", "x"]), numbers,
                                          max_size=3)),
           "generation": draw(st.one_of(st.none(), st.integers(-3, 10**20)))}
    for key in draw(st.lists(st.sampled_from(["recipe", "method", "seed", "merge_gain",
                                              "parent_kinship", "ref", "tool"]), max_size=3)):
        rec[key] = draw(json_values)
    if draw(st.booleans()):
        rec["parent_kinship"] = {"pcc": draw(numbers)}
    return rec


@st.composite
def lineage_texts(draw, valid: str):
    kind = draw(st.sampled_from(["records", "records", "mutated", "json", "bytes"]))
    if kind == "records":
        model = draw(records())
        ancestors = {r["id"]: r for r in draw(st.lists(records(), max_size=4))}
        if draw(st.booleans()):  # an ancestor under another id than its own
            ancestors["m-elsewhere"] = draw(records())
        return json.dumps({"model": model, "ancestors": ancestors}).encode()
    if kind == "mutated":
        data = bytearray(valid.encode())
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data[:draw(st.integers(0, len(data)))]) if draw(st.booleans()) \
            else bytes(data)
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=200))


@given(data=st.data())
@fuzz(150, 3000)
def test_lineage_json_fuzz(folder, data, tmp_path_factory):
    """Random and mutated lineage.json and family.json through read, show, graph, merge."""
    text = data.draw(lineage_texts(folder["valid"]))
    f = folder["base"] / "lineage.json"
    f.write_bytes(text)
    family = folder["root"] / "family.json"  # a run's records, read beside every lineage.json
    family.write_text(json.dumps(data.draw(st.lists(records(), max_size=4)))
                      if data.draw(st.booleans()) else "[]")
    with limited(20, "lineage fuzz example"):
        try:
            got = lin.read(folder["base"])
            assert isinstance(got, lin.Lineage)
        except ModelLoadError:
            pass
        for args in (["lineage", "show", folder["base"]],
                     ["lineage", "show", "--json", folder["base"]],
                     ["lineage", "graph", folder["base"], "--out", folder["root"] / "g.svg"],
                     ["lineage", "graph", folder["root"], "--out", folder["root"] / "r.png"]):
            res = CliRunner().invoke(main, [str(a) for a in args])
            assert res.exit_code in (0, 2), (args, res.output, res.exception)
            assert "Traceback" not in res.output
        out = tmp_path_factory.mktemp("out") / "m"
        kinmerge.merge({"merge_method": "linear", "models": [
            {"model": str(folder["base"]), "parameters": {"weight": 1.0}}]}, out)
        assert lin.read(out).model.parents  # the merge went on, with a parent
