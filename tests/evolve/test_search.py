"""The CMA-ES loop on a synthetic fitness: improvement, storage, resume, workers, Ray."""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from kinmerge.errors import KinmergeError
from kinmerge.search.evolve import evolve
from kinmerge.search.evolve.search import default_popsize

HERE = Path(__file__).parent


def history(out: Path) -> list[dict]:
    with open(out / "history.csv") as f:
        return list(csv.DictReader(f))


def test_default_popsize():
    assert [default_popsize(n) for n in (2, 4, 10, 88)] == [6, 8, 10, 17]


def test_cmaes_improves_and_records_every_trial(ps_config, tmp_path):
    gens = []
    res = evolve(ps_config(budget={"trials": 30}), tmp_path / "run", on_generation=gens.append)
    rows = history(tmp_path / "run")
    assert len(rows) == 30 and all(r["state"] == "COMPLETE" for r in rows)
    x0 = float(rows[0]["fitness"])
    assert json.loads(rows[0]["genome"]) == [0.5, 0.5]
    s = res.summary.to_dict()
    assert s["best_search"] > x0 + 0.15  # x0 scores 0.75, the optimum 1
    assert s["winner_beats_best_baseline"] and s["trials"] == 30
    assert gens[0].generation == 0 and gens[-1].best == pytest.approx(s["best_search"])
    for key in ("merge_seconds", "eval_seconds", "seed", "recipe"):
        assert rows[5][key]
    assert (tmp_path / "run" / "fitness.png").stat().st_size > 1000
    assert "seed:" in res.best_recipe.read_text()


def test_existing_study_needs_resume(ps_config, tmp_path):
    first = evolve(ps_config(budget={"trials": 3}), tmp_path / "run").summary.wall_seconds
    with pytest.raises(KinmergeError) as e:
        evolve(ps_config(budget={"trials": 3}), tmp_path / "run")
    db = str((tmp_path / "run" / "study.db").resolve())
    assert e.value.message == (f"{db} already holds this run's ps study (the search was started "
                               f"before)\n  where: {db}\n  fix: pass resume=True to continue "
                               "it, or choose another out folder")
    assert e.value.cli_fix == "pass --resume to continue it, or choose another --out"
    assert "sqlite:" not in e.value.cli_message and ":ps" not in e.value.cli_message
    with pytest.raises(KinmergeError, match="evolve.yml changed"):
        evolve(ps_config(seed=5), tmp_path / "run", resume=True)
    res = evolve(ps_config(budget={"trials": 3}), tmp_path / "run", resume=True, trials=5)
    assert res.summary.trials == 5  # the budget may grow on resume
    # the resumed run's wall time adds to the first run's
    assert res.summary.wall_seconds > first


def _complete(db: Path) -> list[tuple[int, float]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as c:
            return c.execute("select t.number, v.value from trials t join trial_values v "
                             "on t.trial_id = v.trial_id where t.state = 'COMPLETE' "
                             "order by t.number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


def test_kill_9_then_resume_keeps_every_finished_trial(ps_config, tmp_path):
    import yaml

    cfg = ps_config(budget={"trials": 14}, fitness={"function": "evo_fitness:slow_closeness"})
    (tmp_path / "evolve.yml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from kinmerge.cli import main; main()", "evolve", str(tmp_path / "evolve.yml"),
           "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(_complete(out / "study.db")) < 4 and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _complete(out / "study.db")
    assert 4 <= len(before) < 14
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name=(out / 'study-name').read_text().strip() + ':ps',
                              storage=f"sqlite:///{out / 'study.db'}")
    after = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    assert len(after) == 14
    assert all(after[n] == v for n, v in before)  # nothing finished was lost or redone
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in study.trials)
    assert json.loads((out / "summary.json").read_text())["trials"] == 14


def test_two_workers(ps_config, tmp_path):
    """Workers change where trials run, never which: a generation is asked whole and told
    in order, so the run is the sequential one (genomes, scores, best)."""
    res = evolve(ps_config(budget={"trials": 9}), tmp_path / "run", workers=2)
    rows = history(tmp_path / "run")
    assert res.summary.trials == 9 and len({r["trial"] for r in rows}) == 9
    assert all(r["worker"] for r in rows)  # scored in pool processes, not inline
    assert res.summary.best_heldout == pytest.approx(res.summary.best_search)
    seq = evolve(ps_config(budget={"trials": 9}), tmp_path / "seq")
    keep = ("trial", "generation", "state", "fitness", "seed", "genome", "recipe")
    assert [{k: r[k] for k in keep} for r in rows] == \
        [{k: r[k] for k in keep} for r in history(tmp_path / "seq")]
    assert seq.summary.best_search == res.summary.best_search
    assert {r["generation"] for r in rows} == {"0", "1", "2"}  # 1 + 6 + 2: a partial last one


def test_ray_backend(ps_config, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(  # Ray workers import evo_fitness too
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    res = evolve(ps_config(budget={"trials": 6}), tmp_path / "run", workers=2, backend="ray")
    assert res.summary.trials == 6


def test_unknown_backend(ps_config, tmp_path):
    with pytest.raises(KinmergeError, match="unknown backend"):
        evolve(ps_config(), tmp_path / "run", backend="dask")


def test_saved_best_scores_as_evaluated(ps_config, tmp_path):
    cfg = ps_config(template={"merge_method": "dare_ties", "dtype": "float32"},
                    search={"params": {"weight": [0, 1], "density": [0, 1]}},
                    fitness={"function": "evo_fitness:logit_norm"}, budget={"trials": 4})
    res = evolve(cfg, tmp_path / "run", save_best=True)
    s = res.summary.to_dict()
    assert s["best_model_matches"] and s["best_model_heldout"] == s["best_heldout"]
    assert (tmp_path / "run" / "best-model" / "mergekit_config.yml").exists()
