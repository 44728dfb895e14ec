"""Issue 18, one output rule and one lock: every run that writes an OUT holds OUT's lock (a
second run on it fails naming the live owner), and publishing replaces only what the run was
allowed to replace (an OUT that appeared, or was swapped, meanwhile is kept)."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import kinmerge
from kinmerge.cli import main
from kinmerge.cli.mergekit_compat import main as kinmerge_yaml
from kinmerge.errors import KinmergeError, OutputExistsError
from kinmerge.io import atomic
from kinmerge.io.rundir import lock_path, run_lock
from kinmerge.zoo.synthetic import synthetic_llama

KW = dict(layers=2, hidden=16, intermediate=24, vocab=40)
# the CLI with a writer that waits for a go-file after its first tensor: a merge held mid-write
HELD_CLI = """
import sys, time
from pathlib import Path
MARK, GO = Path(sys.argv.pop(1)), Path(sys.argv.pop(1))
import kinmerge.io.writer as w
real = w.ShardedWriter.add
def held(self, *a, **k):
    real(self, *a, **k)
    MARK.touch()
    deadline = time.time() + 60
    while not GO.exists() and time.time() < deadline:
        time.sleep(0.02)
w.ShardedWriter.add = held
from kinmerge.cli import main
main()
"""


@pytest.fixture
def job(tmp_path):
    root = tmp_path / "models"
    base = synthetic_llama(root / "base", seed=0, **KW)
    ft = synthetic_llama(root / "ft1", base=base, seed=1, delta=0.05, **KW)
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"merge_method": "task_arithmetic", "base_model": str(base),
                                 "models": [{"model": str(ft), "parameters": {"weight": 0.5}}]}))
    return f


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in ("lineage.json", "README.md"):  # time, OUT's name
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def held_merge(tmp_path, recipe, out, *extra):
    """A real `kinmerge merge` process, stopped after its first tensor until `go` exists."""
    mark, go = tmp_path / "first.mark", tmp_path / "go"
    env = {**os.environ, "COLUMNS": "1000", "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.Popen([sys.executable, "-c", HELD_CLI, str(mark), str(go), "merge",
                          str(recipe), str(out), "--no-progress", *extra], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not mark.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert mark.exists(), p.communicate()[1]
    return p, go


@pytest.mark.parametrize("second", [[], ["--overwrite"]])
def test_two_merges_onto_one_new_out_the_second_fails_naming_the_first(job, tmp_path, second):
    out = tmp_path / "merged"
    first, go = held_merge(tmp_path, job, out)
    try:
        env = {**os.environ, "COLUMNS": "1000"}
        r = subprocess.run([sys.executable, "-c", "from kinmerge.cli import main; main()",
                            "merge", str(job), str(out), "--no-progress", *second], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert (f"{os.path.abspath(out)} is in use by a live kinmerge run: pid {first.pid} on "
                f"host {socket.gethostname()} (merge, started ") in r.stderr + r.stdout
        assert "Traceback" not in r.stderr
        assert not out.exists()  # the second run wrote nothing
    finally:
        go.touch()
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    # the first run's OUT is whole, equal to the same merge done alone, and its lock is gone
    alone = kinmerge.merge(job, tmp_path / "alone")
    assert digest(out) == digest(alone)
    assert not lock_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if ".kinmerge" in p.name) == []


def test_every_writer_takes_the_same_lock(job, tmp_path):
    """merge, kinmerge-yaml, lora-merge, multi-stage, soup and zoo writes all refuse an OUT
    whose lock another process holds."""
    out = tmp_path / "busy"
    hold = subprocess.Popen([sys.executable, "-c",
                             "import sys, time; from kinmerge.io.rundir import run_lock; "
                             "l = run_lock(sys.argv[1], 'evolve'); l.__enter__(); "
                             "print('held', flush=True); time.sleep(120)", str(out)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "held"
        busy = f"is in use by a live kinmerge run: pid {hold.pid} on host"
        r = CliRunner().invoke(main, ["merge", str(job), str(out), "--no-progress"])
        assert r.exit_code == 2 and busy in r.output, r.output
        r = CliRunner().invoke(kinmerge_yaml, [str(job), str(out), "--quiet"])
        assert r.exit_code == 2 and busy in r.output, r.output
        multi = tmp_path / "multi.yml"
        doc = yaml.safe_load(job.read_text())
        multi.write_text(yaml.safe_dump_all([{"name": "s1", **doc},
                                             {**doc, "base_model": "s1"}]))
        with pytest.raises(KinmergeError, match=busy):
            kinmerge.merge(multi, out)
        from kinmerge.zoo.cache import copy_zoo
        src = tmp_path / "zoo-src"
        src.mkdir()
        with pytest.raises(KinmergeError, match=busy):
            copy_zoo(src, out)
        from kinmerge.search.soup import soup
        with pytest.raises(KinmergeError, match=busy):
            soup({"ingredients": [str(tmp_path / "models" / m) for m in ("ft1", "base")],
                  "fitness": {"function": "nowhere:f"}}, out, fitness=lambda c: {"x": 1.0})
        from kinmerge.demo import run_demo
        with pytest.raises(KinmergeError, match=busy):
            run_demo(out, evolve_trials=0, breed_evaluations=0)
        r = CliRunner().invoke(main, ["lora-merge", f"{tmp_path / 'models' / 'ft1'}+"
                                      f"{tmp_path / 'adapter'}", str(out), "--no-progress"])
        assert r.exit_code == 2 and busy in r.output, r.output
        assert not out.exists() and not (tmp_path / "zoo-src" / "x").exists()
    finally:
        hold.kill()
        hold.wait()


def test_lock_is_reentrant_in_one_thread_and_exclusive_across_threads(tmp_path):
    import threading

    out = tmp_path / "o"
    errors = []
    with run_lock(out, "merge"):
        with run_lock(out, "merge"):  # a multi-stage run's final stage takes it again
            pass
        assert lock_path(out).exists()  # still held by the outer block
        t = threading.Thread(target=lambda: _try(out, errors))
        t.start()
        t.join()
    assert len(errors) == 1 and "is in use by a live kinmerge run" in errors[0]
    assert not lock_path(out).exists()
    with run_lock(out, "merge"):  # free again
        pass


def _try(out, errors):
    try:
        with run_lock(out, "merge"):
            pass
    except KinmergeError as e:
        errors.append(str(e))


# --- publish replaces only what it may ---------------------------------------------------------
def test_an_out_that_appears_meanwhile_is_kept(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputExistsError) as e:
        with atomic.atomic_dir(out, overwrite=False) as tmp:
            (tmp / "new").write_text("ours")
            out.mkdir()  # another program (not kinmerge: it takes no lock) made OUT meanwhile
            (out / "theirs").write_text("theirs")
    assert f"output path {out} appeared while this run was writing it; it was left as it " \
           "is" in str(e.value)
    assert os.listdir(out) == ["theirs"] and (out / "theirs").read_text() == "theirs"
    assert sorted(os.listdir(tmp_path)) == ["out"]  # our temp folder removed, no lock left


def test_an_out_swapped_for_another_meanwhile_is_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "v").write_text("old")
    with pytest.raises(OutputExistsError) as e:
        with atomic.atomic_dir(out, overwrite=True) as tmp:
            (tmp / "v").write_text("ours")
            os.rename(out, tmp_path / "moved")  # someone swaps OUT for another folder
            out.mkdir()
            (out / "v").write_text("theirs")
    assert "was replaced by another folder while this run was writing it" in str(e.value)
    assert (out / "v").read_text() == "theirs"
    # the folder that was there at the start (and --overwrite allowed) is replaced as before
    with atomic.atomic_dir(out, overwrite=True) as tmp:
        (tmp / "v").write_text("ours")
    assert (out / "v").read_text() == "ours"


def test_publish_defaults_to_replacing_nothing(tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "new"
    out.mkdir(), tmp.mkdir()
    (out / "v").write_text("old")
    with pytest.raises(OutputExistsError):
        atomic.publish(tmp, out)
    assert (out / "v").read_text() == "old" and tmp.is_dir()


def test_atomic_dir_without_overwrite_refuses_an_existing_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputExistsError, match="already exists"):
        with atomic.atomic_dir(out, overwrite=False):
            raise AssertionError("not reached")
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_failed_merge_leaves_no_folder_it_made(job, tmp_path):
    """The lock file needs OUT's parent: the folders made for it go when the run fails."""
    bad = tmp_path / "bad.yml"
    doc = yaml.safe_load(job.read_text())
    doc["models"][0]["model"] = str(tmp_path / "missing")  # found missing once the lock is held
    bad.write_text(yaml.safe_dump(doc))
    out = tmp_path / "runs" / "deep" / "out"
    r = CliRunner().invoke(main, ["merge", str(bad), str(out), "--no-progress"])
    assert r.exit_code == 2 and f"model '{tmp_path / 'missing'}' not found" in r.output, r.output
    assert not (tmp_path / "runs").exists()
    r = CliRunner().invoke(main, ["merge", str(job), str(out), "--no-progress"])
    assert r.exit_code == 0 and (out / "model.safetensors").is_file()
    assert sorted(os.listdir(out.parent)) == ["out"]  # no lock file left beside OUT
