"""kill -9 in the middle of a run, then the same command again: nothing finished is redone."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml


def evaluated(db: Path) -> list[str]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return [n for (n,) in con.execute("SELECT name FROM evaluations")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        con.close()


def test_kill_9_and_resume(pool, tmp_path):
    here = Path(__file__).parent
    cfg = {"pool": pool["ft"], "base_model": pool["base"],
           "fitness": {"function": "breed_standins:slow_logged"},
           "operator": {"merge_method": "slerp", "parameters": {"t": 0.5}, "dtype": "float32"},
           "kinship": {"threshold": None}, "budget": {"evaluations": 16}}
    (tmp_path / "breed.yml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "BREED_TEST_BASE": pool["base"],
           "BREED_TEST_POOL": os.pathsep.join(pool["ft"]), "BREED_TEST_LOG": str(tmp_path / "calls.log"),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from kinmerge.cli import main; main()", "breed",
           str(tmp_path / "breed.yml"), "--out", str(tmp_path / "run"), "--no-report"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    db = tmp_path / "run" / "breed.db"
    deadline = time.time() + 60
    while len(evaluated(db)) < 7 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = evaluated(db)
    assert 7 <= len(before) < 16, "the run should have been killed mid-way"
    merged_before = sorted(p.name for p in (tmp_path / "run" / "models").iterdir()
                           if not p.name.startswith("."))
    mtimes = {n: (tmp_path / "run" / "models" / n / "model.safetensors").stat().st_mtime_ns
              for n in merged_before}
    calls_before = (tmp_path / "calls.log").read_text().split()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    calls_after = (tmp_path / "calls.log").read_text().split()[len(calls_before):]
    assert not set(before) & set(calls_after), "a finished evaluation was redone"
    for n, t in mtimes.items():  # finished merges were not rewritten
        assert (tmp_path / "run" / "models" / n / "model.safetensors").stat().st_mtime_ns == t
    assert len(evaluated(db)) == 16 and "stopped: budget" in done.stdout
    assert len(before) + len(calls_after) == 16
