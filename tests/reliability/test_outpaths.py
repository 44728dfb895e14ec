"""Issue 10, output side: no input is ever lost, OUT is never half there, and every fault of
the environment (disk full, file-size limit, unwritable or symlinked OUT, over-long names) is
one KinmergeError, exit 2, no traceback, no temporary folder left."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import kinmerge
from kinmerge.cli import main
from kinmerge.errors import OutputExistsError
from kinmerge.cli.mergekit_compat import main as kinmerge_yaml
from kinmerge.io import atomic
from kinmerge.zoo.synthetic import synthetic_llama

KW = dict(layers=2, hidden=16, intermediate=24, vocab=40)


@pytest.fixture
def models(tmp_path):
    """models/base, models/ft1, models/ft2, owned by this test (some tests try to lose them)."""
    root = tmp_path / "models"
    base = synthetic_llama(root / "base", seed=0, **KW)
    for i in (1, 2):
        synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **KW)
    return root


def recipe(tmp_path, root: Path, name="r.yml") -> Path:
    f = tmp_path / name
    f.write_text(yaml.safe_dump({"merge_method": "task_arithmetic",
                                 "base_model": str(root / "base"),
                                 "models": [{"model": str(root / f"ft{i}"),
                                             "parameters": {"weight": 0.5}} for i in (1, 2)]}))
    return f


def run(args, cli=main):
    return CliRunner().invoke(cli, [str(a) for a in args])


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".kinmerge-" in p.name)


# --- no input is ever lost ------------------------------------------------------------------
def test_kinmerge_yaml_out_holding_the_inputs_is_refused(models, tmp_path):
    """mergekit-yaml replaces OUT by default: `kinmerge-yaml r.yml models` used to delete
    models/base, models/ft1, models/ft2 and exit 0."""
    before = fingerprint(models)
    r = run([recipe(tmp_path, models), models], cli=kinmerge_yaml)
    assert r.exit_code == 2, r.output
    assert f"OUT {models} holds input model {models / 'base'}" in r.output
    assert "choose an OUT outside every input model folder" in r.output
    assert "Traceback" not in r.output
    assert fingerprint(models) == before and not leftovers(tmp_path)


@pytest.mark.parametrize("where, relation", [("base", "is"), ("ft1/merged", "is inside")])
def test_out_equal_to_or_inside_an_input_is_refused_even_with_overwrite(models, tmp_path,
                                                                        where, relation):
    before = fingerprint(models)
    out = models / where
    r = run(["merge", recipe(tmp_path, models), out, "--overwrite"])
    assert r.exit_code == 2, r.output
    ref = models / where.split("/")[0]
    assert f"OUT {out} {relation} input model {ref} ({ref})" in r.output
    assert fingerprint(models) == before and not leftovers(models)


def test_out_reaching_an_input_through_a_symlinked_parent_is_refused(models, tmp_path):
    (tmp_path / "alias").symlink_to(models)
    r = run(["merge", recipe(tmp_path, models), tmp_path / "alias" / "ft2", "--overwrite"])
    assert r.exit_code == 2 and "is input model" in r.output
    assert (models / "ft2" / "model.safetensors").exists()


def test_hub_model_cache_folder_is_protected(models, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    f = tmp_path / "hub.yml"
    f.write_text(yaml.safe_dump({"merge_method": "linear", "models": [
        {"model": "org/tiny", "parameters": {"weight": 1.0}},
        {"model": str(models / "ft1"), "parameters": {"weight": 1.0}}]}))
    out = cache / "models--org--tiny" / "blobs"
    r = run(["merge", f, out, "--overwrite"])
    assert r.exit_code == 2, r.output
    assert f"is inside input model org/tiny ({cache / 'models--org--tiny'})" in r.output


def test_overwrite_replaces_a_previous_merge(models, tmp_path):
    out = tmp_path / "merged"
    f = recipe(tmp_path, models)
    assert run(["merge", f, out]).exit_code == 0
    (out / "stale.txt").write_text("from the previous OUT")
    r = run(["merge", f, out])
    assert r.exit_code == 2 and "already exists" in r.output
    # the command line names its flag, Python the keyword: each reader sees what they type
    assert "fix: choose another path, or pass --overwrite\n" in r.output
    assert "overwrite=True" not in r.output
    with pytest.raises(OutputExistsError) as e:
        kinmerge.merge(f, out)
    assert e.value.fix == "choose another path, or pass overwrite=True"
    assert run(["merge", f, out, "--overwrite"]).exit_code == 0
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").exists()
    assert not leftovers(tmp_path)


# --- the swap --------------------------------------------------------------------------------
def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "f").write_text("A"), (b / "f").write_text("B")
    if not atomic.exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not available on this system")
    assert (a / "f").read_text() == "B" and (b / "f").read_text() == "A"


def test_publish_replaces_out_without_a_window(tmp_path, monkeypatch):
    """Replacing OUT is one renameat2 swap: no os.rename, so no instant without an OUT."""
    if atomic._renameat2() is None:
        pytest.skip("renameat2 not available: the documented two-rename fallback is used")
    out, tmp = tmp_path / "out", tmp_path / "new"
    out.mkdir(), tmp.mkdir()
    (out / "v").write_text("old"), (tmp / "v").write_text("new")
    seen = []
    real_rename = os.rename
    monkeypatch.setattr(atomic.os, "rename", lambda s, d: (seen.append(out.exists()),
                                                          real_rename(s, d))[1])
    atomic.publish(tmp, out, replaces=atomic.identity(out))
    assert (out / "v").read_text() == "new" and not tmp.exists()
    assert seen == []


def test_fallback_without_renameat2_restores_an_old_out_a_kill_left_aside(tmp_path,
                                                                          monkeypatch, caplog):
    """The two-rename fallback: a kill between them leaves the old OUT aside; the next run
    puts it back before anything else."""
    monkeypatch.setattr(atomic, "_renameat2", lambda: None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "v").write_text("old")
    dead = _dead_pid()
    aside = tmp_path / f".out.kinmerge-old-{atomic.host_tag()}-{dead}-0123abcd"
    os.rename(out, aside)  # as if killed right after the first rename
    with caplog.at_level(logging.INFO):
        atomic.remove_leftovers(out)
    assert (out / "v").read_text() == "old" and not aside.exists()
    assert f"restored {out} from {aside}" in caplog.text
    tmp = tmp_path / "new"
    tmp.mkdir()
    (tmp / "v").write_text("new")
    atomic.publish(tmp, out, replaces=atomic.identity(out))  # fallback: aside, in, delete
    assert (out / "v").read_text() == "new" and not leftovers(tmp_path)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# --- leftovers of interrupted runs -----------------------------------------------------------
def test_next_run_removes_dead_runs_leftovers_and_keeps_live_ones(models, tmp_path, caplog):
    out = tmp_path / "merged"
    host = atomic.host_tag()
    dead = tmp_path / f".merged.kinmerge-tmp-{host}-{_dead_pid()}-0123abcd"
    live = tmp_path / f".merged.kinmerge-tmp-{host}-{os.getpid()}-4567abcd"
    legacy = tmp_path / ".merged.kinmerge-tmp-89abcdef"  # kinmerge before owners were named
    for d in (dead, live, legacy):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 1500)
    with caplog.at_level(logging.INFO):
        kinmerge.merge(recipe(tmp_path, models), out)
    assert not dead.exists() and live.exists() and legacy.exists()
    assert f"removed {dead} (1.5 KB) left by an interrupted run" in caplog.text
    assert f"remove it: rm -rf '{legacy}'" in caplog.text


# --- names -----------------------------------------------------------------------------------
def test_any_legal_out_name_works_however_long(models, tmp_path):
    out = tmp_path / ("m" * 255)  # the longest legal name: no room for a temp suffix
    r = run(["merge", recipe(tmp_path, models), out])
    assert r.exit_code == 0, r.output
    assert (out / "model.safetensors").exists() and not leftovers(tmp_path)


def test_out_name_over_the_limit_is_one_clear_error(models, tmp_path):
    r = run(["merge", recipe(tmp_path, models), tmp_path / ("m" * 256)])
    assert r.exit_code == 2, r.output
    assert "OUT has a name of 256 bytes, over the file system's limit of 255" in r.output
    assert "choose a shorter OUT name" in r.output


# --- unwritable and symlinked OUT ------------------------------------------------------------
def test_symlinked_out_is_refused_and_its_target_untouched(models, tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep").write_text("mine")
    (tmp_path / "link").symlink_to(target)
    r = run(["merge", recipe(tmp_path, models), tmp_path / "link", "--overwrite"])
    assert r.exit_code == 2, r.output
    assert f"OUT {tmp_path / 'link'} is a symbolic link (to {target})" in r.output
    assert (target / "keep").read_text() == "mine"


def test_out_under_a_regular_file_is_refused(models, tmp_path):
    """Not writable by anyone, root included: a path below a file."""
    (tmp_path / "plain").write_text("")
    r = run(["merge", recipe(tmp_path, models), tmp_path / "plain" / "sub" / "out"])
    assert r.exit_code == 2, r.output
    assert f"cannot be created: {tmp_path / 'plain'} is a file, not a folder" in r.output


def test_permission_denied_while_writing_is_one_error(models, tmp_path, monkeypatch):
    km = sys.modules["kinmerge.core.write"]

    def denied(tmp, *a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp / "config.json"))

    monkeypatch.setattr(km, "write_side_files", denied)
    out = tmp_path / "merged"
    r = run(["merge", recipe(tmp_path, models), out])
    assert r.exit_code == 2, r.output
    assert "Permission denied (EACCES)" in r.output and "Traceback" not in r.output
    assert not out.exists() and not leftovers(tmp_path)


# --- disk full, file too large ---------------------------------------------------------------
def test_disk_full_is_one_error_and_the_temp_folder_is_removed(models, tmp_path, monkeypatch):
    import kinmerge.io.writer as w

    def full(self, name, tensor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(w.ShardedWriter, "add", full)
    out = tmp_path / "merged"
    r = run(["merge", recipe(tmp_path, models), out])
    assert r.exit_code == 2, r.output
    assert f"cannot write {out}: No space left on device (ENOSPC)" in r.output
    assert "free space on that disk, or write OUT to another disk" in r.output
    assert not out.exists() and not leftovers(tmp_path)


def test_real_small_tmpfs_fills_up(models, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = run(["merge", recipe(tmp_path, models), mnt / "merged"])
        assert r.exit_code == 2, r.output
        assert "No space left on device (ENOSPC)" in r.output
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_file_size_limit_is_one_error(models, tmp_path):
    """A real RLIMIT_FSIZE below the shard size: write fails with EFBIG (Python ignores
    SIGXFSZ, so the write returns an error instead of killing the process)."""
    code = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
            "from kinmerge.cli import main; main()")
    out = tmp_path / "merged"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run([sys.executable, "-c", code, "merge", str(recipe(tmp_path, models)),
                        str(out), "--no-progress"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    assert "File too large (EFBIG)" in p.stderr and "ulimit -f" in p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists() and not leftovers(tmp_path)


def test_write_error_paths_of_plots_and_csv(models, tmp_path):
    """Files kinmerge writes (plots, CSV) get the same checks: not inside an input model,
    not through a symlink."""
    r = run(["kinship-matrix", models / "ft1", models / "ft2", "--base", models / "base",
             "--csv", models / "ft1" / "kin.csv"])
    assert r.exit_code == 2, r.output
    assert f"--csv {models / 'ft1' / 'kin.csv'} is inside input model" in r.output
    (tmp_path / "fig.png").symlink_to(models / "ft1" / "config.json")
    r = run(["kinship", models / "ft1", models / "ft2", "--base", models / "base",
             "--plot", tmp_path / "fig.png"])
    assert r.exit_code == 2 and "is a symbolic link" in r.output


def test_overwrite_refuses_a_folder_that_is_not_a_model(models, tmp_path):
    """kinmerge-yaml replaces OUT by default; a project folder is not a merge to replace."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "notes.txt").write_text("mine")
    r = run([recipe(tmp_path, models), project], cli=kinmerge_yaml)
    assert r.exit_code == 2, r.output
    assert (f"OUT {project} exists and is not a model folder (2 entries: notes.txt, src); "
            "--overwrite would delete all of it") in r.output
    assert (project / "notes.txt").read_text() == "mine"


def test_database_disk_full_is_one_error():
    import sqlite3

    from kinmerge.io.outpath import environment_error

    class Wrapped(Exception):  # as SQLAlchemy wraps the driver's error
        orig = sqlite3.OperationalError("database or disk is full")

    e = environment_error(Wrapped())
    assert e.message.startswith("cannot write the run's database: database or disk is full")
    assert environment_error(sqlite3.OperationalError("no such table: x")) is None
    assert environment_error(OSError(errno.EFBIG, "File too large", "/o/x")).message.startswith(
        "cannot write /o/x: File too large (EFBIG)")


def test_out_in_a_folder_without_write_permission(models, tmp_path, monkeypatch):
    """As root no folder is unwritable, so the permission answer is simulated."""
    import kinmerge.io.outpath as op

    monkeypatch.setattr(op.os, "access", lambda p, mode: Path(p) != tmp_path)
    r = run(["merge", recipe(tmp_path, models), tmp_path / "merged"])
    assert r.exit_code == 2, r.output
    assert f"cannot be created: no permission to write in {tmp_path}" in r.output


def test_demo_and_zoo_build_keep_their_inputs(tmp_path):
    zoo = tmp_path / "zoo"
    (zoo / "base").mkdir(parents=True)
    r = run(["demo", "--out", zoo / "base", "--zoo", zoo, "--quiet"])
    assert r.exit_code == 2 and f"OUT {zoo / 'base'} is inside input model --zoo" in r.output
    (tmp_path / "project" / "src").mkdir(parents=True)
    r = run(["zoo", "build", tmp_path / "project", "--tiny"])
    assert r.exit_code == 2, r.output
    assert f"{tmp_path / 'project'} exists and is not a zoo: building would replace it" in r.output


def test_overwrite_of_the_current_folder_is_refused(models, tmp_path, monkeypatch):
    prev = tmp_path / "prev"
    kinmerge.merge(recipe(tmp_path, models), prev)
    monkeypatch.chdir(prev)
    r = run(["merge", recipe(tmp_path, models), ".", "--overwrite"])
    assert r.exit_code == 2, r.output
    assert "OUT . is the current folder or holds it" in r.output
    assert (prev / "model.safetensors").exists() and not leftovers(prev)


def test_file_outputs_refuse_a_fifo_or_a_folder(tmp_path):
    from kinmerge.errors import KinmergeError
    from kinmerge.io.outpath import check_out

    os.mkfifo(tmp_path / "pipe.png")  # writing a plot into it would block forever
    for p in (tmp_path / "pipe.png", tmp_path):
        with pytest.raises(KinmergeError, match="exists and is not a regular file"):
            check_out(p, option="figure", folder=False)


def test_out_path_over_the_path_limit_is_one_clear_error(models, tmp_path):
    deep = tmp_path.joinpath(*["d" * 200] * 21)  # each name legal, the whole path not
    r = run(["merge", recipe(tmp_path, models), deep])
    assert r.exit_code == 2, r.output
    assert "over the system's limit of 4032" in r.output and "Traceback" not in r.output


def test_out_through_a_symlink_loop_is_one_clear_error(models, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    r = run(["merge", recipe(tmp_path, models), tmp_path / "loop" / "out"])
    assert r.exit_code == 2, r.output
    assert f"OUT {tmp_path / 'loop' / 'out'} cannot be resolved" in r.output
    assert "Traceback" not in r.output
