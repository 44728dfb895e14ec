"""The demo end to end on the tiny zoo: files, summary schema, CLI table."""
from __future__ import annotations

import json

from click.testing import CliRunner

from kinmerge.demo import run_demo


def test_demo_writes_summary_and_plots(tiny_zoo, tmp_path):
    result = run_demo(tmp_path / "demo", zoo_dir=tiny_zoo, evolve_trials=3,
                      breed_evaluations=6)
    s = json.loads((tmp_path / "demo/summary.json").read_text())
    assert s["parents"] == ["add", "rev"]
    assert s["best_merge"] in s["merges"] and s["best_merge"] in s["scores"]
    for name in ["base", "add", "add_seed2", "rev", *s["merges"]]:
        sc = s["scores"][name]
        assert set(sc) == {"add", "rev", "mean"}
        assert sc["mean"] == (sc["add"] + sc["rev"]) / 2
    best = max(s["merges"], key=lambda n: s["scores"][n]["mean"])
    assert s["scores"][best]["mean"] == s["scores"][s["best_merge"]]["mean"]
    for f in ["scores.png", "kinship.png", "kinship.csv", "recipes/ties.yml"]:
        assert (tmp_path / "demo" / f).stat().st_size > 0, f
    assert result.kinship is not None and result.kinship["cs"].shape == (3, 3)
    assert s["evolve"]["trials"] == 3 and 0 <= s["evolve"]["best_heldout"] <= 1
    assert (tmp_path / "demo/evolve/best.yml").exists()
    assert s["breed"]["evaluations"] <= 6 and s["breed"]["stop_reason"]
    assert "<img" in (tmp_path / "demo/report.html").read_text()


def test_demo_cli_prints_tables(tiny_zoo, tmp_path):
    from kinmerge.cli import main
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--zoo", str(tiny_zoo),
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    assert "held-out exact match" in r.output and "best merge" in r.output
    assert "kinship" in r.output
