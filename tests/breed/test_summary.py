"""Typed results: breed's summary and generations are frozen dataclasses, JSON at the edge."""
import dataclasses
import json

import pytest

from kinmerge.breed.summary import BreedSummary, Generation, Merge
from kinmerge.evolve.summary import EvolveSummary


def test_breed_summary_is_typed_and_saved_as_its_dict(full_run):
    s, out = full_run
    assert isinstance(s, BreedSummary) and all(isinstance(g, Generation) for g in s.generations)
    assert s.to_dict() == json.loads((out / "summary.json").read_text())
    assert s.best_score == s["best_score"] and s.generations[1].top_k == tuple(
        s["generations"][1]["top_k"])
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
    assert s["trials"] == 3 and "best_heldout" not in s
