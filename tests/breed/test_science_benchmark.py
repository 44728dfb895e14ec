"""benchmarks/breed_science.py end to end on the tiny zoo (untrained, seconds to build): the
contract a later session reruns on the report seeds."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def benchmark():
    spec = importlib.util.spec_from_file_location("breed_science",
                                                  ROOT / "benchmarks" / "breed_science.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_the_contract_on_one_tiny_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "science"
    strategies = ["greedy", "random_pairs", "greedy_full"]
    assert benchmark().main(["--seeds", "0", "--preset", "tiny", "--budget", "7",
                             "--strategies", *strategies, "--out", str(out)]) == 0
    data = json.loads((out / "science.json").read_text())
    # the untrained tiny zoo fails its check: recorded, its runs flagged, not compared
    (z,) = data["zoos"]
    assert z["seed"] == 0 and z["ok"] is False and z["problems"]
    assert [(r["seed"], r["strategy"]) for r in data["runs"]] == [(0, s) for s in strategies]
    for r in data["runs"]:
        assert {"seed", "strategy", "best_heldout", "evals_to_best", "evaluations", "trace",
                "kinship_for_selection", "kinship_measured", "zoo_ok"} <= set(r)
        assert r["zoo_ok"] is False and 0 <= r["best_heldout"] <= 1
        assert len(r["trace"]) == r["evaluations"] <= 7
        assert r["trace"] == sorted(r["trace"]) and r["trace"][-1] == pytest.approx(r["best"])
        assert r["kinship_for_selection"] == 0  # greedy and the controls read no kinship
    full = next(r for r in data["runs"] if r["strategy"] == "greedy_full")
    assert full["evaluations"] == 7
    assert data["compare"]["greedy_full_vs_greedy"]["seeds"] == []  # the zoo failed
    assert data["compare_all"]["greedy_full_vs_greedy"]["seeds"] == [0]
    shas = [(c["seed"], c["sha256"]) for c in data["children"]]
    assert len(shas) == len(set(shas)) and all("kinship" in c for c in data["children"])
    assert (out / "science.md").read_text().startswith("# Breeding science: preset `tiny`")
    assert (out / "anytime.png").stat().st_size > 5_000
    # rerun on the same folder: every breed run is reused, the numbers are the same
    assert benchmark().main(["--seeds", "0", "--preset", "tiny", "--budget", "7",
                             "--strategies", *strategies, "--out", str(out)]) == 0
    again = json.loads((out / "science.json").read_text())
    assert [r["trace"] for r in again["runs"]] == [r["trace"] for r in data["runs"]]
    assert again["children"] == data["children"]
