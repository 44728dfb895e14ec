"""Issue 10, interrupted runs: SIGTERM and Ctrl-C unwind cleanly (no temp folder, the old OUT
intact, exit 143 / 130, no traceback); after kill -9 the next run on the same OUT removes what
the dead run left and says how much."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kinmerge.zoo.synthetic import synthetic_llama

# the CLI, with each written tensor announced by a marker file and slowed down, so that a
# signal lands mid-merge
SLOW_CLI = """
import pathlib, signal, sys, time
# as in a terminal: a suite started in the background (`pytest &`) hands its children
# SIGINT ignored, and Python then leaves it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
import kinmerge.io.writer as w
MARK = pathlib.Path(sys.argv.pop(1))
add = w.ShardedWriter.add
def slow(self, name, tensor):
    add(self, name, tensor)
    MARK.touch()
    time.sleep(0.1)
w.ShardedWriter.add = slow
from kinmerge.cli import main
main()
"""


@pytest.fixture
def job(tmp_path):
    root = tmp_path / "models"
    kw = dict(layers=2, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", seed=0, **kw)
    ft = synthetic_llama(root / "ft1", base=base, seed=1, delta=0.05, **kw)
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"merge_method": "task_arithmetic", "base_model": str(base),
                                 "models": [{"model": str(ft), "parameters": {"weight": 0.5}}]}))
    return f


def start(tmp_path, recipe, out, *extra) -> tuple[subprocess.Popen, Path]:
    mark = tmp_path / "first-tensor.mark"
    env = {**os.environ, "COLUMNS": "1000", "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.Popen([sys.executable, "-c", SLOW_CLI, str(mark), "merge", str(recipe),
                          str(out), "--no-progress", *extra], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not mark.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert mark.exists(), p.communicate()[1]
    return p, mark


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".kinmerge-" in p.name)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_merge_cleans_up_and_keeps_the_old_out(job, tmp_path, sig, code):
    out = tmp_path / "merged"
    out.mkdir()  # a previous merge, as --overwrite replaces only model folders
    (out / "config.json").write_text("{}")
    (out / "previous.txt").write_text("the OUT of an earlier run")
    p, _ = start(tmp_path, job, out, "--overwrite")
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert ("terminated: removing partial outputs" if sig == signal.SIGTERM
            else "interrupted: partial outputs removed") in err
    assert (out / "previous.txt").read_text() == "the OUT of an earlier run"
    assert sorted(os.listdir(out)) == ["config.json", "previous.txt"] and not leftovers(tmp_path)


def test_kill_9_leftover_is_removed_by_the_next_run(job, tmp_path):
    out = tmp_path / "merged"
    p, mark = start(tmp_path, job, out)
    p.kill()
    p.wait()
    (left,) = [tmp_path / n for n in leftovers(tmp_path)]
    assert f"-{p.pid}-" in left.name and not out.exists()
    size = sum(f.stat().st_size for f in left.rglob("*") if f.is_file())
    assert size > 0
    env = {**os.environ, "COLUMNS": "1000"}
    done = subprocess.run([sys.executable, "-c", "from kinmerge.cli import main; main()",
                           "merge", str(job), str(out), "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    human = f"{size} bytes" if size < 1000 else f"{size / 1000:.1f} KB"
    assert f"removed {left} ({human}) left by an interrupted run (pid {p.pid})" in done.stderr
    assert not leftovers(tmp_path) and (out / "model.safetensors").exists()


@pytest.mark.slow  # two CLI processes and a search: ~15 s idle, over a minute on a busy box
def test_sigterm_mid_evolve_exits_cleanly_and_resumes(tmp_path):
    """SIGTERM in the middle of a search: exit 143, no traceback, the lock released, and
    `--resume` finishes the budget."""
    import sqlite3

    from kinmerge.io.rundir import run_lock

    here = Path(__file__).parents[1] / "evolve"
    root = tmp_path / "fam"
    kw = dict(layers=2, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", seed=0, **kw)
    for i in (1, 2):
        synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **kw)
    cfg = {"mode": "ps", "base_model": str(base), "models": [str(root / "ft1"), str(root / "ft2")],
           "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
           "search": {"params": {"weight": [0, 1]}},
           "fitness": {"function": "evo_fitness:slow_closeness"}, "budget": {"trials": 7},
           "baselines": {"weights": [0.5]}, "seed": 0}
    (tmp_path / "evolve.yml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "evo"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get(
        "PYTHONPATH", "")]), "COLUMNS": "1000"}
    cmd = [sys.executable, "-c", "from kinmerge.cli import main; main()", "evolve",
           str(tmp_path / "evolve.yml"), "--out", str(out)]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def complete() -> int:
        try:
            con = sqlite3.connect(out / "study.db")
            try:
                return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'"
                                   ).fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0

    deadline = time.time() + 90
    while complete() < 2 and p.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Traceback" not in err
    with run_lock(out, "evolve"):  # released by the terminated run
        pass
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert "\"trials\": 7" in done.stdout
