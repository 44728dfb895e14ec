"""Lineage of bred models, and the breed / lineage commands end to end."""
import json

from click.testing import CliRunner

from kinmerge import lineage
from kinmerge.cli import main
from kinmerge.lineage.show import ancestors


def third_generation(summary: dict) -> str:
    return next(m["child"] for g in summary["generations"] if g["generation"] == 3
                for m in g["merged"])


def test_a_third_generation_model_knows_its_ancestors_back_to_the_pool(full_run):
    s, out = full_run[0].to_dict(), full_run[1]
    child = out / "models" / third_generation(s)
    lin = lineage.read(child)
    assert lin.model.generation == 3
    found = ancestors(lin)
    roots = {r.name for r in found if r.is_root}
    assert roots <= {"add", "rev", "mul", "cap"} and len(roots) >= 2
    for rec in found:  # every merged ancestor comes with the recipe that made it
        if not rec.is_root:
            assert "merge_method: slerp" in rec.recipe and len(rec.parents) == 2
    assert {r.generation for r in found if not r.is_root} >= {1, 2}

    r = CliRunner().invoke(main, ["lineage", "show", str(child)], terminal_width=200)
    assert r.exit_code == 0, r.output
    for rec in found:
        assert rec.name in r.output
    assert "merge_method: slerp" in r.output and "roots:" in r.output


def test_a_bred_childs_card_carries_its_scores(full_run):
    s, out = full_run[0].to_dict(), full_run[1]
    child = out / "models" / third_generation(s)
    rec = lineage.read(child).model
    card = (child / "README.md").read_text()
    assert card.count("## Lineage") == 1
    assert f"fitness = {rec.scores['fitness']:.4f}" in card
    assert f"merge gain: {rec.merge_gain:+.4f}" in card


def test_lineage_is_mirrored_in_the_run_database(full_run):
    from kinmerge.search.breed.state import BreedState

    s, out = full_run[0].to_dict(), full_run[1]
    st = BreedState(out / "breed.db")
    recs = st.lineage()
    st.close()
    child = lineage.read(out / "models" / s["best_model"]) if s["best_model"].startswith("g") \
        else None
    names = {r.name for r in recs.values()}
    assert {"add", "rev", "mul", "cap"} <= names
    assert all("fitness" in r.scores for r in recs.values())
    if child is not None:
        assert recs[child.model.id].scores == child.model.scores
    family = json.loads((out / "family.json").read_text())
    assert len(family) == len(recs) == s["evaluations"]


def test_lineage_graph_writes_svg_and_png(full_run, tmp_path):
    _, out = full_run
    for suffix in ("svg", "png"):
        target = tmp_path / f"family.{suffix}"
        r = CliRunner().invoke(main, ["lineage", "graph", str(out), "--out", str(target)])
        assert r.exit_code == 0, r.output
        data = target.read_bytes()
        assert len(data) > 10_000
    assert data.startswith(b"\x89PNG")
    svg = (tmp_path / "family.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "gen 3" in svg


def test_lineage_graph_refuses_an_unknown_suffix(full_run, tmp_path):
    r = CliRunner().invoke(main, ["lineage", "graph", str(full_run[1]), "--out",
                                  str(tmp_path / "x.gif")])
    assert r.exit_code == 2 and "unknown image type" in r.output


def test_breed_command_runs_and_resumes(pool, tmp_path, monkeypatch):
    from breed_standins import cli_breed_yml
    f = cli_breed_yml(pool, tmp_path, monkeypatch)
    args = ["breed", str(f), "--out", str(tmp_path / "run"), "--top-k", "2", "--no-explore"]
    r = CliRunner().invoke(main, args, terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "stopped: budget" in r.output and "report:" in r.output
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["evaluations"] == 5 and s["explore"] is False
    assert (tmp_path / "run" / "report.html").is_file()
    # a larger budget continues the same run from its caches
    r = CliRunner().invoke(main, args + ["--budget", "6", "--no-report"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["evaluations"] == 6


def test_breed_command_reports_config_problems(tmp_path):
    f = tmp_path / "breed.yml"
    f.write_text("pool: [a, b]\nbase_model: b\nfitness: {function: m:f}\ntopk: 3\n")
    r = CliRunner().invoke(main, ["breed", str(f), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown key 'topk'" in r.output
