"""Lineage records written by merge(), followed across generations and runs."""
import shutil

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
