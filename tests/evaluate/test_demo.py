"""The demo end to end on the tiny zoo: files, summary schema, CLI table."""
from __future__ import annotations

import json
import logging
import re

from click.testing import CliRunner

from kinmerge.demo import DemoSummary, run_demo


def test_demo_writes_summary_and_plots(tiny_zoo, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kinmerge"):
        result = run_demo(tmp_path / "demo", zoo_dir=tiny_zoo, evolve_trials=3,
                          breed_evaluations=6)
    # from its first second a line per step and per scored model (logs and CI see it move)
    said = [m for m in caplog.messages if m.startswith("demo: ")]
    assert said[0] == "demo: the zoo (unpacked once, then cached)"
    assert said[2] == "demo: scoring the zoo's models, then 7 merges of add and rev"
    scored = [m.split(":")[0] for m in caplog.messages
              if re.match(r"^[\w.-]+: add=\d", m)]
    assert scored[:4] == ["base", "add", "add_seed2", "rev"] and "evolved" in scored
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
    assert result.summary.to_dict() == s  # the typed summary is what summary.json holds
    assert DemoSummary.from_dict(s).to_dict() == s


def test_demo_cli_prints_tables(tiny_zoo, tmp_path):
    from kinmerge.cli import main
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--zoo", str(tiny_zoo),
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    assert "held-out exact match" in r.output and "best merge" in r.output
    assert "kinship" in r.output
    assert "the best hand merge" in r.output and "evolved recipe" in r.output


def test_evolve_verdict_says_which_won():
    from dataclasses import replace

    from kinmerge.cli.demo import evolve_verdict
    from kinmerge.demo import DemoEvolve
    e = DemoEvolve(trials=30, best_search=0.9, best_recipe="runs/demo/evolve/best.yml",
                   heldout_mean=0.9125, best_hand_merge="task_arithmetic_0.8",
                   best_hand_mean=0.94, beats_best_hand_merge=False)
    assert evolve_verdict(e) == (
        "evolved recipe (30 trials, runs/demo/evolve/best.yml): held-out mean 0.912 does NOT "
        "beat the best hand merge task_arithmetic_0.8 (0.940)")
    assert " beats the best hand merge" in evolve_verdict(
        replace(e, heldout_mean=0.955, beats_best_hand_merge=True))


def test_demo_recipes_merge_after_the_zoo_moves_and_out_is_copied(tiny_zoo, tmp_path,
                                                                   monkeypatch):
    """recipes/*.yml name ./zoo/NAME, which the demo fills: move the zoo and copy OUT
    elsewhere, and `cd OUT && kinmerge merge recipes/ties.yml merged/` still merges."""
    import shutil

    import yaml

    from kinmerge import merge_to_memory
    from kinmerge.cli import main
    from kinmerge.demo import demo_recipes
    from kinmerge.io.reader import ModelReader

    cache = tmp_path / "cache"
    shutil.copytree(tiny_zoo, cache)
    run_demo(tmp_path / "demo", zoo_dir=cache, evolve_trials=0, breed_evaluations=0)
    recipe = yaml.safe_load((tmp_path / "demo/recipes/ties.yml").read_text())
    assert recipe["base_model"] == "./zoo/base"
    assert [m["model"] for m in recipe["models"]] == ["./zoo/add", "./zoo/rev"]
    assert sorted(p.name for p in (tmp_path / "demo/zoo").iterdir()) == [
        "add", "add_seed2", "base", "rev", "tasks", "zoo.json"]
    want = merge_to_memory(demo_recipes(cache, "add", "rev")["ties"], seed=0)

    cache.rename(tmp_path / "moved")  # the cache moves ...
    shutil.copytree(tmp_path / "demo", tmp_path / "elsewhere")  # ... and OUT is copied
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = CliRunner().invoke(main, ["merge", "recipes/ties.yml", "merged", "--seed", "0"])
    assert r.exit_code == 0, r.output
    got = ModelReader(tmp_path / "elsewhere/merged")
    assert set(got.names()) == set(want.tensors)
    for name, t in want.tensors.items():
        assert got.get(name).equal(t), name

    monkeypatch.chdir(tmp_path)  # from another folder: a clear error, not a hub download
    r = CliRunner().invoke(main, ["merge", "elsewhere/recipes/ties.yml", "m2"])
    assert r.exit_code == 2 and "model './zoo/base' not found: no folder ./zoo/base" in r.output


def test_evolved_and_bred_recipes_merge_after_the_demo_moves_and_the_cache_goes(
        tiny_zoo, tmp_path, monkeypatch):
    """evolve/best.yml, evolve.yml, breed.yml and the bred models' recipes name ./zoo/NAME
    (the demo runs evolve and breed from OUT): after `mv OUT` and the cache's removal,
    `cd OUT && kinmerge merge evolve/best.yml X` merges the same tensors as before."""
    import shutil

    import yaml

    from kinmerge import merge_to_memory
    from kinmerge.cli import main
    from kinmerge.demo import working_dir
    from kinmerge.io.reader import ModelReader

    cache = tmp_path / "cache"
    shutil.copytree(tiny_zoo, cache)
    out = tmp_path / "demo"
    s = run_demo(out, zoo_dir=cache, evolve_trials=3, breed_evaluations=6).summary
    assert s.evolve.best_recipe == str(out / "evolve/best.yml")
    written = sorted(str(f.relative_to(out)) for f in out.rglob("*")
                     if f.suffix in (".yml", ".md", ".csv", ".json") and "zoo" not in f.parts)
    leaks = [f for f in written if str(cache) in (out / f).read_text()
             and f not in ("summary.json",)]  # summary.json says which zoo it used
    assert leaks == []
    best = yaml.safe_load((out / "evolve/best.yml").read_text())
    assert best["base_model"] == "./zoo/base"
    assert [m["model"] for m in best["models"]] == ["./zoo/add", "./zoo/rev"]
    assert yaml.safe_load((out / "breed/breed.yml").read_text())["pool"] == [
        "./zoo/add", "./zoo/add_seed2", "./zoo/rev"]
    child = yaml.safe_load((out / "breed/models/g1-01/mergekit_config.yml").read_text())
    assert [m["model"] for m in child["models"]] == ["./zoo/add", "./zoo/add_seed2"]
    with working_dir(out):
        want = {r: merge_to_memory(r, seed=0) for r in
                ("evolve/best.yml", "breed/models/g1-01/mergekit_config.yml")}

    shutil.rmtree(cache)  # the cache goes ...
    out.rename(tmp_path / "moved")  # ... and OUT moves
    monkeypatch.chdir(tmp_path / "moved")
    for i, (recipe, model) in enumerate(want.items()):
        r = CliRunner().invoke(main, ["merge", recipe, f"m{i}", "--seed", "0"])
        assert r.exit_code == 0, r.output
        got = ModelReader(tmp_path / f"moved/m{i}")
        assert set(got.names()) == set(model.tensors)
        for name, t in model.tensors.items():
            assert got.get(name).equal(t), (recipe, name)


def test_score_plot_cuts_long_names(tmp_path, monkeypatch):
    """A 70-character merge name would squash the bars into a sliver: labels stop at 24."""
    from kinmerge.demo import run as demo  # where the plot is drawn and saved

    figs = []
    monkeypatch.setattr(demo, "save", lambda fig, path: figs.append(fig) or path)
    long = "task_arithmetic_rev_sort_with_a_name_that_no_line_break_can_split"
    scores = {n: {"rev": 0.5, "sort": 0.5, "mean": 0.5} for n in ("base", long)}
    demo.plot_scores(scores, ["rev", "sort"], tmp_path / "s.png", title="t")
    labels = [t.get_text() for t in figs[0].axes[0].get_xticklabels()]
    assert labels == ["base", "task_arithmetic_rev_sor…"]
