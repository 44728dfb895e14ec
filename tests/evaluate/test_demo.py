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
    e = s["evolve"]
    assert e["trials"] == 3 and e["heldout_mean"] == s["scores"]["evolved"]["mean"]
    assert e["best_hand_merge"] == s["best_merge"]
    assert e["best_hand_mean"] == s["scores"][s["best_merge"]]["mean"]
    assert e["beats_best_hand_merge"] == (e["heldout_mean"] > e["best_hand_mean"])
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
    assert "the best hand merge" in r.output and "evolved recipe" in r.output


def test_evolve_verdict_says_which_won():
    from kinmerge.cli.demo import evolve_verdict
    e = {"trials": 30, "best_recipe": "runs/demo/evolve/best.yml", "heldout_mean": 0.9125,
         "best_hand_merge": "task_arithmetic_0.8", "best_hand_mean": 0.94,
         "beats_best_hand_merge": False}
    assert evolve_verdict(e) == (
        "evolved recipe (30 trials, runs/demo/evolve/best.yml): held-out mean 0.912 does NOT "
        "beat the best hand merge task_arithmetic_0.8 (0.940)")
    assert " beats the best hand merge" in evolve_verdict(
        {**e, "heldout_mean": 0.955, "beats_best_hand_merge": True})
