"""kinmerge.threads: which thread count wins, the CPU budget it reads, and that public calls
leave torch's setting as they found it."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import kinmerge
from kinmerge import threads
from kinmerge.cli import main
from kinmerge.errors import KinmergeError
from kinmerge.kinship import kinship


def test_policy_by_work():
    pick = lambda work, **kw: threads.choose(work, env={}, **kw).threads  # noqa: E731
    assert pick("elementwise", cpus=16, busy=0) == 1
    # merge arithmetic runs on one thread whatever the count (threads.arithmetic): a merge
    # of either kind gets 1, so the executor never has to switch torch's count per tensor
    assert pick("select", cpus=16, busy=0) == 1
    assert pick("select", cpus=3, busy=0) == 1
    assert pick("train", cpus=16, busy=0) == 1  # the zoo's tiny models: fixed, not by load
    assert pick("train", cpus=16, busy=15) == 1
    assert pick("matmul", cpus=8, busy=0) == 8
    assert pick("matmul", cpus=8, busy=3) == 5  # others running take their cores
    assert pick("matmul", cpus=2, busy=5) == 1
    assert threads.choose("matmul", env={}, cpus=2, busy=0).source == "policy"


def test_overrides_in_order():
    env = {"KINMERGE_THREADS": "3", "OMP_NUM_THREADS": "5", "MKL_NUM_THREADS": "7"}
    assert threads.choose("elementwise", 2, env=env, cpus=4) == \
        threads.ThreadChoice(2, "--threads", 4)
    assert threads.choose("elementwise", env=env, cpus=4) == \
        threads.ThreadChoice(3, "KINMERGE_THREADS", 4)
    del env["KINMERGE_THREADS"]
    assert threads.choose("elementwise", env=env, cpus=4) == \
        threads.ThreadChoice(5, "OMP_NUM_THREADS", 4)
    del env["OMP_NUM_THREADS"]
    assert threads.choose("matmul", env=env, cpus=4) == \
        threads.ThreadChoice(7, "MKL_NUM_THREADS", 4)


@pytest.mark.parametrize("bad", ["0", "two", "-1", ""])
def test_bad_counts(bad):
    if bad == "":  # an empty variable counts as unset
        assert threads.choose("elementwise", env={"KINMERGE_THREADS": ""}).source == "policy"
        return
    with pytest.raises(KinmergeError) as e:
        threads.choose("elementwise", env={"KINMERGE_THREADS": bad})
    assert e.value.message == (f"not a thread count: {bad!r}\n  where: KINMERGE_THREADS\n"
                               "  fix: give a whole number of threads, 1 or more")


def test_cgroup_quota(tmp_path):
    mine = tmp_path / "proc-self-cgroup"
    mine.write_text("0::/\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(tmp_path, mine) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_quota(tmp_path, mine) == 1.5
    (tmp_path / "user.slice" / "job").mkdir(parents=True)
    (tmp_path / "user.slice" / "job" / "cpu.max").write_text("50000 100000\n")
    mine.write_text("0::/user.slice/job\n")
    assert threads.cgroup_quota(tmp_path, mine) == 0.5  # the process's own group first
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_quota(v1, mine) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert threads.cgroup_quota(v1, mine) == 2.0
    assert threads.cgroup_quota(tmp_path / "none", mine) is None


def test_usable_cpus_follow_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    assert threads.usable_cpus() == 4
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 1.5)
    assert threads.usable_cpus() == 2  # a partial CPU still runs a thread


def test_others_running(tmp_path):
    f = tmp_path / "loadavg"
    f.write_text("2.10 1.50 0.90 4/812 12345\n")
    assert threads.others_running(f) == 3
    f.write_text("0.00 0.00 0.00 1/100 1\n")
    assert threads.others_running(f) == 0
    assert threads.others_running(tmp_path / "missing") == 0


def _linear(family) -> dict:
    return {"merge_method": "linear", "dtype": "float32",
            "models": [{"model": m, "parameters": {"weight": 1.0}} for m in family["ft"]]}


def test_merge_uses_then_restores(family, tmp_path, monkeypatch):
    seen = set()
    torch.set_num_threads(3)
    try:
        kinmerge.merge(_linear(family), tmp_path / "a", threads=2,
                       progress=lambda plan, job: seen.add(torch.get_num_threads()))
        assert seen == {2} and torch.get_num_threads() == 3
        seen.clear()
        for var in ("KINMERGE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(var, raising=False)
        kinmerge.merge(_linear(family), tmp_path / "b",
                       progress=lambda plan, job: seen.add(torch.get_num_threads()))
        assert seen == {1} and torch.get_num_threads() == 3  # the policy: 1 for linear
        monkeypatch.setenv("KINMERGE_THREADS", "2")
        kinmerge.merge_to_memory(_linear(family))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)


def test_kinship_restores_after_error_too(family):
    seen = set()
    torch.set_num_threads(3)
    try:
        kinship(*family["ft"][:2], base=family["base"], threads=2,
                progress=lambda done, total: seen.add(torch.get_num_threads()))
        assert seen == {2} and torch.get_num_threads() == 3
        with pytest.raises(KinmergeError):
            kinship(*family["ft"][:2], base=family["base"], metrics="nope", threads=2)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)


def test_bad_threads_option_is_a_clean_error(family, tmp_path):
    r = CliRunner().invoke(main, ["kinship", *family["ft"][:2], "--base", family["base"],
                                  "--threads", "0", "--no-progress"])
    assert r.exit_code == 2
    assert r.output.startswith("error: not a thread count: 0\n"), r.output


@pytest.mark.parametrize("cmd", [["merge"], ["kinship"], ["kinship-matrix"], ["eval"],
                                 ["evolve"], ["breed"]])
def test_help_says_the_default(cmd):
    r = CliRunner().invoke(main, [*cmd, "--help"], terminal_width=200)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "--threads INTEGER" in text
    assert "Default: kinmerge's policy: 1 for merges and kinship (memory-bound)" in text
    assert "KINMERGE_THREADS, or an OMP_NUM_THREADS you set, overrides it." in text
    assert "A merge's arithmetic runs on one thread whatever this says" in text


def test_the_library_sets_no_thread_environment():
    """The thread count travels as an argument: no module of kinmerge writes a thread
    variable into the environment (a worker that inherited one would override the policy)."""
    import re
    from pathlib import Path

    src = Path(kinmerge.__file__).parent
    write = re.compile(r"environ(\[[^\]]+\]\s*=|\.setdefault|\.update)|putenv")
    found = {f"{p.relative_to(src)}:{i}": line.strip()
             for p in sorted(src.rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if write.search(line)}
    # one exception: Ray's own authentication switch, set only around starting the local
    # cluster kinmerge owns (not a thread setting; Ray reads it only from the environment),
    # through runners._env_default, which is called for nothing else
    import ast
    import inspect

    from kinmerge.search import runners

    fn = runners._env_default
    lines, first = inspect.getsourcelines(fn)
    inside = {f"search/runners.py:{first + i}" for i in range(len(lines))}
    assert {k: v for k, v in found.items() if k not in inside} == {}
    calls = [n for n in ast.walk(ast.parse(Path(runners.__file__).read_text()))
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "_env_default"]
    assert [ast.literal_eval(c.args[0]) for c in calls] == ["RAY_AUTH_MODE"]


def test_pool_workers_follow_the_policy_not_an_inherited_setting(monkeypatch):
    import os

    from kinmerge.search.runners import ProcessRunner

    for var in ("KINMERGE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    runner = ProcessRunner(1)
    try:
        assert runner.submit(os.getenv, "OMP_NUM_THREADS").result() is None
    finally:
        runner.close()


def test_eval_threads_is_read_once_by_the_driver(monkeypatch):
    """KINMERGE_EVAL_THREADS (documented for evolve) becomes the jobs' `threads` argument
    on the driver; workers read no environment."""
    from kinmerge.search.evolve.config import eval_threads

    monkeypatch.delenv("KINMERGE_EVAL_THREADS", raising=False)
    assert eval_threads() is None
    monkeypatch.setenv("KINMERGE_EVAL_THREADS", " 3 ")
    assert eval_threads() == 3
    monkeypatch.setenv("KINMERGE_EVAL_THREADS", "many")
    with pytest.raises(KinmergeError, match="KINMERGE_EVAL_THREADS='many' is not a whole"):
        eval_threads()
