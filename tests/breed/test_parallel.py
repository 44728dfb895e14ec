"""A generation's merges and evaluations on parallel workers give the sequential run's
results, and a failed worker's job is redone once on resume, nothing finished again."""
import csv
import json
import os
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from breed_standins import FailOnce, TargetScore, mean_target
from kinmerge.search.breed import breed

HERE = Path(__file__).parent


def run(config, fitness, kin, out, **kw):
    return breed(config(explore=True), out, fitness=fitness, kinship_fn=kin, plots=False,
                 **kw).summary.to_dict()


def history(out: Path) -> list[dict]:
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # folders differ by run; everything else must not
        r["path"] = Path(r["path"]).name
    return rows


def same_run(a: Path, sa: dict, b: Path, sb: dict) -> None:
    keep = lambda s: {k: v for k, v in s.items() if k != "best_path"}  # noqa: E731
    assert keep(sa) == keep(sb)
    assert history(a) == history(b)
    for child in (a / "models").iterdir():
        wa, wb = (load_file(str(d / "models" / child.name / "model.safetensors"))
                  for d in (a, b))
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


@pytest.fixture(scope="module")
def sequential(config, pool, kin, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "run"
    fit = TargetScore(pool["base"], mean_target(pool))
    return out, run(config, fit, kin, out)


def test_parallel_breed_equals_sequential(sequential, config, pool, kin, tmp_path):
    seq_out, seq = sequential
    assert len(seq["generations"]) >= 3 and any(g["explored"] for g in seq["generations"])
    fit = TargetScore(pool["base"], mean_target(pool))
    par = run(config, fit, kin, tmp_path / "par", workers=2)
    same_run(seq_out, seq, tmp_path / "par", par)


def test_a_failed_worker_job_is_redone_once_and_nothing_else(sequential, config, pool, kin,
                                                             tmp_path):
    seq_out, seq = sequential
    log = str(tmp_path / "calls.log")
    fit = FailOnce(pool["base"], mean_target(pool), log, victim="g1-03")
    with pytest.raises(RuntimeError, match="worker crashed on g1-03"):
        run(config, fit, kin, tmp_path / "par", workers=2)
    first = Path(log).read_text().split()
    assert "g1-03" not in first and len(first) == len(set(first))
    par = run(config, fit, kin, tmp_path / "par", workers=2)
    calls = Path(log).read_text().split()
    assert len(calls) == len(set(calls)) == par["evaluations"]  # each model scored once
    assert calls.count("g1-03") == 1
    same_run(seq_out, seq, tmp_path / "par", par)


def test_ray_breed_equals_sequential(sequential, config, pool, kin, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(  # Ray workers import breed_standins
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    seq_out, seq = sequential
    fit = TargetScore(pool["base"], mean_target(pool))
    par = run(config, fit, kin, tmp_path / "ray", workers=2, backend="ray")
    same_run(seq_out, seq, tmp_path / "ray", par)


def test_configured_fitness_is_rebuilt_in_each_worker(pool, config, kin, tmp_path, monkeypatch):
    """breed.yml's fitness travels to the workers as its spec and is built there."""
    from click.testing import CliRunner

    from kinmerge.cli import main

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("BREED_TEST_BASE", pool["base"])
    cfg = config(fitness={"function": "breed_standins:delta_size"},
                 budget={"generations": 2})
    (tmp_path / "breed.yml").write_text(yaml.safe_dump(cfg))
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        r = CliRunner().invoke(main, ["breed", str(tmp_path / "breed.yml"), "--out", str(out),
                                      "--workers", workers, "--no-report"])
        assert r.exit_code == 0, r.output
        runs[workers] = out
    one, two = (json.loads((runs[w] / "summary.json").read_text()) for w in ("1", "2"))
    one.pop("best_path"), two.pop("best_path")
    assert one == two and one["evaluations"] > 4
