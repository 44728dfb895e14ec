"""Typed results: breed's summary and generations are frozen dataclasses, JSON at the edge."""
import dataclasses
import json

import pytest

from kinmerge.search.breed.summary import BreedSummary, Generation, Merge
from kinmerge.search.evolve.summary import EvolveSummary


def test_breed_summary_is_typed_and_saved_as_its_dict(full_run):
    s, out = full_run
    assert isinstance(s, BreedSummary) and all(isinstance(g, Generation) for g in s.generations)
    assert s.to_dict() == json.loads((out / "summary.json").read_text())
    assert BreedSummary.from_dict(s.to_dict()) == s and s.generations[1].top_k == tuple(
        s.to_dict()["generations"][1]["top_k"])
    with pytest.warns(DeprecationWarning, match=r"read BreedSummary\.best_score"):
        assert s["best_score"] == s.best_score  # the old mapping reads, for one release
    g = s.generations[1]
    assert g.merged and isinstance(g.merged[0], Merge) and len(g.merged[0].parents) == 2
    assert Generation.from_dict(g.to_dict()).to_dict() == g.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.best_score = 1.0  # type: ignore[misc]


def test_evolve_summary_omits_absent_parts_and_keeps_unknown_keys():
    s = EvolveSummary.from_dict({"mode": "ps", "trials": 3, "best_search": 0.5, "timing": {},
                                 "wall_seconds": 1.5, "note": "newer key"})
    assert s.best_heldout is None and s.extra == {"note": "newer key"}
    assert s.to_dict() == {"mode": "ps", "trials": 3, "best_search": 0.5, "timing": {},
                           "wall_seconds": 1.5, "note": "newer key"}
    assert "best_heldout" not in s.to_dict()


def test_a_summary_written_before_select_still_loads():
    old = {"generation": 2, "top_k": ["g1-01", "a", "b"], "top_k_kinship": 0.4, "best": 0.9,
           "best_model": "g1-01", "explored": ["g1-01", "c"], "evaluations": 12,
           "merged": [{"parents": ["g1-01", "c"], "child": "g2-07", "origin": "explore"}]}
    g = Generation.from_dict(old)
    assert g.skipped is None and g.merged[0].predicted_gain is None
    assert g.to_dict() == old  # the new fields are left out while unset
    new = {**old, "skipped": 3, "merged": [{"parents": ["g1-01", "c"], "child": "g2-07",
                                            "origin": "predicted", "predicted_gain": -0.01,
                                            "predicted_by": "fit"}]}
    g = Generation.from_dict(new)
    assert g.skipped == 3 and (g.merged[0].predicted_gain, g.merged[0].predicted_by) == (
        -0.01, "fit")
    assert g.to_dict() == new


def test_the_family_tree_is_drawn_from_the_runs_typed_records(full_run):
    """The tree's records come from the run database (no lineage.json read back after it
    was written): the same records, scores and parents as reading the folder gives."""
    from kinmerge.lineage.graph import collect
    from kinmerge.search.breed.run import _family
    from kinmerge.search.breed.state import BreedState

    out = full_run[1]
    state = BreedState(out / "breed.db")
    try:
        family = _family(state, state.lineage())
    finally:
        state.close()
    on_disk = collect(out)
    assert set(family) == set(on_disk) and len(family) > 4
    for rid, rec in on_disk.items():
        assert (family[rid].name, family[rid].parents, family[rid].scores) == \
            (rec.name, rec.parents, rec.scores)


def test_breed_summary_has_one_reader(full_run, tmp_path):
    import json

    from kinmerge.errors import KinmergeError
    from kinmerge.search.breed.summary import read_summary

    s, out = full_run
    assert read_summary(out).to_dict() == s.to_dict()
    (tmp_path / "summary.json").write_text(json.dumps({"mode": "ps", "trials": 3}))
    with pytest.raises(KinmergeError, match=r"holds no readable breed summary \(KeyError"):
        read_summary(tmp_path)


def test_a_pool_merges_own_ancestors_come_from_its_lineage_file(pool, tmp_path):
    """A pool model that is itself a merge: the run database holds its record only; its
    parents' records are on disk beside it, and the tree takes them from there."""
    from kinmerge import lineage, merge
    from kinmerge.search.breed.run import _family
    from kinmerge.search.breed.state import BreedState

    recipe = {"merge_method": "linear", "dtype": "float32",
              "models": [{"model": m, "parameters": {"weight": 0.5}} for m in pool["ft"][:2]]}
    merged = merge(recipe, tmp_path / "merged")
    own = lineage.read(merged)
    state = BreedState(tmp_path / "breed.db")
    try:
        state.add_model("merged", str(merged), own.model.id, 0)
        state.put_lineage(own.model)
        family = _family(state, state.lineage())
    finally:
        state.close()
    assert set(family) == set(own.all()) and len(family) == 3
