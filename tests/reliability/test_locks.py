"""Issue 10, run folders: one live evolve/breed run per OUT (the second is refused naming the
owner, and touches nothing), a moved evolve OUT resumes its own study, and a corrupt study.db
or breed.db is one clear error."""
from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from kinmerge.search.breed import breed
from kinmerge.cli import main
from kinmerge.errors import KinmergeError
from kinmerge.search.evolve import evolve
from kinmerge.io.rundir import lock_path, run_lock
from kinmerge.zoo.synthetic import synthetic_llama

EVOLVE_TESTS = Path(__file__).parents[1] / "evolve"  # evo_fitness: the synthetic fitness
if str(EVOLVE_TESTS) not in sys.path:
    sys.path.insert(0, str(EVOLVE_TESTS))

HOLD = ("import sys, time; from kinmerge.io.rundir import run_lock; "
        "lock = run_lock(sys.argv[1], sys.argv[2]); lock.__enter__(); "
        "print('held', flush=True); time.sleep(120)")


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    root = tmp_path_factory.mktemp("lockfam")
    kw = dict(layers=2, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", seed=0, **kw)
    for i in (1, 2):
        synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **kw)
    return root


def evolve_cfg(fam: Path, trials: int = 6) -> dict:
    return {"mode": "ps", "base_model": str(fam / "base"),
            "models": [str(fam / "ft1"), str(fam / "ft2")],
            "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
            "search": {"params": {"weight": [0, 1]}},
            "fitness": {"function": "evo_fitness:closeness"},
            "budget": {"trials": trials}, "baselines": {"weights": [0.5]},
            "seed": 0}


def breed_cfg(fam: Path) -> dict:
    return {"pool": [str(fam / "ft1"), str(fam / "ft2")], "base_model": str(fam / "base"),
            "fitness": {"function": "breed_standins:unused"},
            "operator": {"merge_method": "linear", "dtype": "float32"},
            "budget": {"generations": 1}}


@pytest.fixture
def holder(tmp_path):
    """A live process holding OUT's lock, as a running evolve/breed would."""
    procs = []

    def hold(out: Path, command: str) -> subprocess.Popen:
        out.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(out), command],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def test_breed_on_an_out_held_by_a_live_run_is_refused(fam, tmp_path, holder):
    out = tmp_path / "run"
    p = holder(out, "breed")
    with pytest.raises(KinmergeError) as e:
        breed(breed_cfg(fam), out, fitness=lambda d: {"x": 1.0}, plots=False)
    assert (f"{out} is in use by a live kinmerge run: pid {p.pid} on host "
            f"{socket.gethostname()} (breed, started ") in str(e.value)
    assert "wait for that run to finish (or stop it)" in str(e.value)
    assert not (out / "breed.db").exists()  # nothing was touched
    p.kill()
    p.wait()  # the kernel drops a dead owner's lock: the file left behind is harmless
    assert lock_path(out).exists()
    with run_lock(out, "breed"):
        pass
    assert not lock_path(out).exists()  # a live owner removes its lock file on release


def test_resume_while_a_run_is_live_is_refused_and_its_trial_stays_running(fam, tmp_path,
                                                                            holder):
    out = tmp_path / "evo"
    evolve(evolve_cfg(fam), out)
    name = (out / "study-name").read_text().strip() + ":ps"
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    running = study.ask()  # the live run's trial in flight
    p = holder(out, "evolve")
    (tmp_path / "evolve.yml").write_text(__import__("yaml").safe_dump(evolve_cfg(fam, 9)))
    r = CliRunner().invoke(main, ["evolve", str(tmp_path / "evolve.yml"), "--out", str(out),
                                  "--resume"])
    assert r.exit_code == 2, r.output
    assert f"is in use by a live kinmerge run: pid {p.pid} on host" in r.output
    assert "Traceback" not in r.output and "sqlite" not in r.output.lower()
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[running.number] == "RUNNING" and len(states) == 7


def test_moved_evolve_out_resumes_its_own_study(fam, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    first = evolve(evolve_cfg(fam), a)
    shutil.move(a, b)
    res = evolve(evolve_cfg(fam, 9), b, resume=True)
    assert first.summary.trials == 6 and res.summary.trials == 9
    names = optuna.get_all_study_names(f"sqlite:///{b / 'study.db'}")
    assert names == [(b / "study-name").read_text().strip() + ":ps"]


def test_study_named_after_an_old_absolute_path_is_adopted(fam, tmp_path):
    """Runs before study-name existed named the study after OUT's absolute path."""
    out = tmp_path / "evo"
    evolve(evolve_cfg(fam), out)
    (out / "study-name").unlink()
    con = sqlite3.connect(out / "study.db")
    with con:
        con.execute("UPDATE studies SET study_name = '/somewhere/else/evo:ps'")
    con.close()
    res = evolve(evolve_cfg(fam, 9), out, resume=True)
    assert res.summary.trials == 9
    assert (out / "study-name").read_text() == "/somewhere/else/evo\n"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_study_db_is_one_clear_error(fam, tmp_path, damage):
    out = tmp_path / "evo"
    if damage == "garbage":
        out.mkdir()
        (out / "study.db").write_bytes(os.urandom(3000))
        why = "it is not an SQLite database"
    else:
        evolve(evolve_cfg(fam), out)
        db = out / "study.db"
        con = sqlite3.connect(db)  # fold the write-ahead log in: study.db alone holds all
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        data = db.read_bytes()
        db.write_bytes(data[:len(data) // 3])
        why = "database disk image is malformed"
    (tmp_path / "evolve.yml").write_text(__import__("yaml").safe_dump(evolve_cfg(fam, 9)))
    r = CliRunner().invoke(main, ["evolve", str(tmp_path / "evolve.yml"), "--out", str(out),
                                  "--resume"])
    assert r.exit_code == 2, r.output
    assert f"the study database {out / 'study.db'} is corrupt: {why}" in r.output
    assert "move study.db away (the run starts over in this folder), or start a new --out" \
        in r.output
    assert "Traceback" not in r.output


def test_corrupt_breed_db_is_one_clear_error(fam, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "breed.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(KinmergeError) as e:
        breed(breed_cfg(fam), out, fitness=lambda d: {"x": 1.0}, plots=False)
    assert f"the breed database {out / 'breed.db'} is corrupt: " in str(e.value)
    assert "move breed.db away" in str(e.value)


def test_evolve_and_breed_out_may_not_be_an_input(fam, tmp_path):
    (tmp_path / "evolve.yml").write_text(__import__("yaml").safe_dump(evolve_cfg(fam)))
    r = CliRunner().invoke(main, ["evolve", str(tmp_path / "evolve.yml"), "--out",
                                  str(fam / "ft1")])
    assert r.exit_code == 2, r.output
    assert f"OUT {fam / 'ft1'} is input model {fam / 'ft1'}" in r.output
    with pytest.raises(KinmergeError, match=f"OUT {fam} holds input model"):
        breed(breed_cfg(fam), fam, fitness=lambda d: {"x": 1.0}, plots=False)
    assert not (fam / "ft1" / "study.db").exists() and not (fam / "breed.db").exists()
