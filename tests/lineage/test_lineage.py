"""Lineage records written by merge(), followed across generations and runs."""
import os
import shutil

import pytest
from click.testing import CliRunner

import kinmerge
from kinmerge import lineage as lin
from kinmerge.cli import main
from kinmerge.lineage.show import ancestors


def slerp(a, b):
    return {"merge_method": "slerp", "base_model": str(a), "parameters": {"t": 0.5},
            "models": [{"model": str(a)}, {"model": str(b)}]}


def test_three_generations(family, tmp_path):
    f1, f2, f3 = family["ft"]
    g1 = kinmerge.merge(slerp(f1, f2), tmp_path / "g1",
                        lineage={"generation": 1, "scores": {"mean": 0.5}})
    g2 = kinmerge.merge(slerp(g1, f3), tmp_path / "g2", lineage={"generation": 2})
    g3 = kinmerge.merge(slerp(g2, g1), tmp_path / "g3", lineage={"generation": 3})
    found = lin.read(g3)
    names = sorted(r.name for r in ancestors(found))
    assert names == ["ft1", "ft2", "ft3", "g1", "g2"]
    assert {r.name for r in ancestors(found) if r.is_root} == {"ft1", "ft2", "ft3"}
    assert found.ancestors[lin.read(g1).model.id].scores == {"mean": 0.5}
    assert found.model.generation == 3 and found.model.method == "slerp"
    assert f"base_model: {g2}" in found.model.recipe
    # the tree survives the parents' directories being moved away
    shutil.rmtree(g1)
    shutil.rmtree(g2)
    r = CliRunner().invoke(main, ["lineage", "show", str(g3)])
    assert r.exit_code == 0, r.output
    for name in ("g3", "g2", "g1", "ft1", "ft2", "ft3", "merge_method: slerp"):
        assert name in r.output
    assert "5 ancestors; roots: " in r.output


def test_same_merge_same_id(family, tmp_path):
    a = kinmerge.merge(slerp(*family["ft"][:2]), tmp_path / "a")
    b = kinmerge.merge(slerp(*family["ft"][:2]), tmp_path / "b")
    c = kinmerge.merge(slerp(*family["ft"][:2]), tmp_path / "c", seed=5)
    assert lin.read(a).model.id == lin.read(b).model.id != lin.read(c).model.id


def test_update_scores(family, tmp_path):
    a = kinmerge.merge(slerp(*family["ft"][:2]), tmp_path / "a")
    lin.update(a, scores={"add": 0.9}, merge_gain=0.1)
    rec = lin.read(a).model
    assert rec.scores == {"add": 0.9} and rec.merge_gain == 0.1


def test_show_without_lineage(tmp_path):
    r = CliRunner().invoke(main, ["lineage", "show", str(tmp_path)])
    assert r.exit_code == 2 and "has no lineage.json" in r.output


def test_the_model_card_reads_any_recipe_shaped_object():
    """lineage builds the card from what the core hands it (no import of the core): a
    Recipe and a plain object with the same fields give the same card."""
    from dataclasses import dataclass

    from kinmerge.core.recipe import load_recipe
    from kinmerge.lineage.card import model_card

    recipe = load_recipe({"merge_method": "ties", "base_model": "org/base",
                          "models": [{"model": "org/a", "parameters": {"weight": 1.0,
                                                                      "density": 0.5}}]})

    @dataclass
    class Plain:
        merge_method: str
        base_model: str | None
        refs: list
        text: str

        def model_refs(self):
            return self.refs

        def to_yaml(self):
            return self.text

    card = model_card(recipe, "m")
    plain = Plain("ties", "org/base", recipe.model_refs(), recipe.to_yaml())
    assert model_card(plain, "m") == card
    assert "**ties** method" in card and "Base model: `org/base`" in card
    assert "- `org/a`" in card and "- `org/base`" not in card


def test_show_prints_a_shared_ancestor_once_and_refuses_a_cycle(tmp_path):
    """A deep family (each generation the child of the two before) prints one line a model,
    not one a path; a lineage.json whose parents form a cycle is refused when read."""
    import json

    from rich.console import Console

    from kinmerge.errors import ModelLoadError
    from kinmerge.lineage import record
    from kinmerge.lineage.show import tree

    recs = [record.LineageRecord(id="root-a", name="a"), record.LineageRecord(id="root-b", name="b")]
    for i in range(30):
        recs.append(record.LineageRecord(id=f"m-{i}", name=f"g{i}",
                                         parents=[recs[-1].id, recs[-2].id], generation=i + 1))
    lin = record.Lineage(model=recs[-1], ancestors={r.id: r for r in recs[:-1]})
    console = Console(width=200, record=True)
    console.print(tree(lin, recipes=False))
    lines = console.export_text().splitlines()
    assert len(lines) == 1 + 2 * 30  # the model, then one line per parent link (2**30 paths)
    assert sum("(shown above)" in line for line in lines) == 60 - 31  # 31 ancestors in full
    data = json.loads(lin.model_dump_json())
    data["ancestors"]["root-a"]["parents"] = ["m-29"]
    (tmp_path / "lineage.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=r"its parents form a cycle: root-a -> m-29 -> "
                                             r"m-28 -> \.\.\. \(26 more\) -> m-1 -> m-0 -> "
                                             r"root-a\)"):
        record.read(tmp_path)


def test_undefined_kinship_is_recorded_as_none_and_other_non_finite_numbers_are_refused(tmp_path):
    """A NaN kinship (a parent equal to the base has a zero task vector) is undefined: the
    record keeps None, writes null, reads back and prints; a NaN score or an infinite gain is
    refused when read."""
    import json
    import math

    from rich.console import Console

    from kinmerge.errors import ModelLoadError
    from kinmerge.lineage import record
    from kinmerge.lineage.show import tree

    rec = record.LineageRecord(id="m-a", name="a", parents=["root-b"],
                               parent_kinship={"pcc": math.nan}, merge_gain=math.nan)
    assert rec.parent_kinship == {"pcc": None} and rec.merge_gain is None
    lin_ = record.Lineage(model=rec, ancestors={"root-b": record.LineageRecord(id="root-b",
                                                                             name="b")})
    record.write(tmp_path, lin_)
    assert record.read(tmp_path).model.parent_kinship == {"pcc": None}
    console = Console(width=200, record=True)
    console.print(tree(record.read(tmp_path)))
    assert "parent kinship pcc=undefined" in console.export_text()
    for field, value in [("scores", {"search": "NaN"}), ("merge_gain", "Infinity")]:
        data = json.loads(lin_.model_dump_json())
        data["model"][field] = value
        (tmp_path / "lineage.json").write_text(json.dumps(data).replace('"NaN"', "NaN")
                                               .replace('"Infinity"', "Infinity"))
        with pytest.raises(ModelLoadError, match=f"model.{field}.*finite number"):
            record.read(tmp_path)


def test_show_of_a_chain_deeper_than_the_recursion_limit():
    """A lineage.json may hold a chain of thousands of generations (64 MiB holds ~100k
    records): lineage show walks it on a stack, so it prints instead of a RecursionError."""
    import sys

    from rich.console import Console

    from kinmerge.lineage import record
    from kinmerge.lineage.show import tree

    depth = sys.getrecursionlimit() + 500
    recs = [record.LineageRecord(id="root-0", name="r")]
    for i in range(1, depth):
        recs.append(record.LineageRecord(id=f"m-{i}", name=f"g{i}", parents=[recs[-1].id]))
    lin = record.Lineage(model=recs[-1], ancestors={r.id: r for r in recs[:-1]})
    t = tree(lin)
    node, n = t, 1
    while node.children:
        node, n = node.children[0], n + 1
    assert n == depth and "root-0" in str(node.label)
    Console(width=120, file=open(os.devnull, "w")).print(t)
