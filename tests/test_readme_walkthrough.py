"""The README's first merge and the guide pages, run top to bottom as a newcomer would.

Every ```bash and ```python block of WALK — the README's "A first merge", then the guides
to the zoo and the demo, evolution, breeding and greedy soup (the merging and kinship guides
are reference-style: their examples name placeholder files) — runs in order in one working
folder, on a seconds-to-build zoo with the shipped zoo's four experts (`kinmerge zoo build
zoo/` is given that zoo; searches get small budgets). Lines that need the network, Ray or an
install are listed in SKIP with the reason. The full walk is slow (KINMERGE_SLOW=1); the
checks above it run in the default suite.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
# (file, first heading walked, heading it stops at or None for the end of the page)
WALK = [("README.md", "## A first merge", "## What the demo measures"),
        ("docs/guides/zoo.md", "# ", None),
        ("docs/guides/evolve.md", "# ", None),
        ("docs/guides/breed.md", "# ", None),
        ("docs/guides/soup.md", "# ", None)]
SKIP = {
    "source .venv": "activates the environment (the walk runs kinmerge from the sources)",
    "make ": "installs a venv (the demo line is run as `kinmerge demo` instead)",
    "--backend ray": "starts a Ray cluster",
    "ray start": "starts a Ray cluster node",
    "gpu_check.sh": "the GPU check (minutes; its point is a machine with a GPU)",
    "kinmerge push": "uploads to the Hugging Face Hub",
    "pip install": "installs packages",
    "zoo-kin": "trains the kin zoo (5-8 min; tests/zoo/test_skills.py checks it, slow)",
    "breed_science.py": "breeds three kin zoos three ways (~30 min; `make science`)",
}
# the walkthrough's zoo is untrained: the check must run and say so
EXPECT_FAIL = {"kinmerge zoo check": "the zoo lacks a property"}
# budgets cut for the walkthrough, and the demo's `make` line as the command it runs
TRIALS, EVALUATIONS = 6, 12
REWRITE = [
    (r"^make demo\b.*", "kinmerge demo --out runs/demo --zoo {zoo} --quiet"),
    (r"^(kinmerge evolve .*?)(\s+#.*)?$", rf"\1 --trials {TRIALS}"),
    (r"^(kinmerge breed .*?)(\s+#.*)?$", rf"\1 --budget {EVALUATIONS}"),
]
# the same cuts for the Python snippets: their calls, and the walk's copy of the examples
# they read (the search examples' own budgets take minutes on a busy 2-core machine)
PY_REWRITE = [(r"\bevaluations=\d+", f"evaluations={EVALUATIONS}")]
EXAMPLE_BUDGETS = {"evolve-zoo.yml": (r"^(  trials:) \d+", rf"\1 {TRIALS}"),
                   "breed-zoo.yml": (r"^(budget: {evaluations:) \d+", rf"\1 {EVALUATIONS}")}
# Time limits scale with the machine's speed measured before each step: a fixed pure-Python
# loop took CALIBRATION_S of CPU time on the development machine (an AMD EPYC core); its wall
# time now, over that, is how much slower this machine is at this moment (a slower CPU, or
# one shared with other work). A step may take STEP_LIMIT_S times that. Measured on the
# development machine at load 4-5 (`-s` prints each step): the slowest step, divided by its
# slowdown, took 31 s (the Python evolve snippet: two worker processes importing torch); the
# whole walk 394 s.
CALIBRATION_S, STEP_LIMIT_S = 0.18, 120.0


def section() -> str:
    """The walked parts of every page of WALK, in order."""
    parts = []
    for rel, start, end in WALK:
        text = (ROOT / rel).read_text()
        parts.append(text[text.index(start):text.index(end) if end else len(text)])
    return "\n".join(parts)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"```(bash|python)\n(.*?)```", section(), re.S)]


def shell_lines(code: str) -> list[str]:
    """One command per entry: continuations joined, comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and
            not ln.strip().startswith("#")]


def skipped(line: str) -> str | None:
    return next((why for key, why in SKIP.items() if key in line), None)


def rewrite(line: str) -> str:
    for pattern, repl in REWRITE:
        if re.match(pattern, line):
            return re.sub(pattern, repl, line)
    return line


def in_folder(line: str, work: Path) -> tuple[str, Path]:
    """`(cd DIR && kinmerge ...)  # ...` -> the kinmerge line and work/DIR; else as is."""
    m = re.match(r"^\(cd (\S+) && (kinmerge [^)]*)\)", line)
    return (m.group(2), work / m.group(1)) if m else (line, work)


def test_a_line_run_inside_a_folder():
    line = "(cd runs/demo && kinmerge merge recipes/ties.yml merged/)   # writes x"
    assert in_folder(line, Path("/w")) == ("kinmerge merge recipes/ties.yml merged/",
                                           Path("/w/runs/demo"))
    assert in_folder("kinmerge demo", Path("/w")) == ("kinmerge demo", Path("/w"))
    assert any(in_folder(ln, Path("/w"))[1] == Path("/w/runs/demo")
               for lang, code in blocks() if lang == "bash" for ln in shell_lines(code))


def test_python_snippets_write_their_own_folders():
    """A Python snippet never reuses an --out folder of the shell lines above it."""
    shell_outs, py_outs = set(), []
    for lang, code in blocks():
        if lang == "bash":
            shell_outs |= set(re.findall(r"--out (\S+)", code))
        else:
            py_outs += re.findall(r"\(\"[^\"]+\.yml\", \"(runs/[^\"]+)\"", code)
    assert py_outs, "the Python snippets name no output folder"
    assert not set(py_outs) & shell_outs


def test_every_shell_line_is_runnable_or_skipped_for_a_reason():
    """The slow walk runs only `kinmerge` lines: any other command a page adds must be in
    SKIP with its reason, or the walk fails minutes in."""
    for lang, code in blocks():
        if lang != "bash":
            continue
        for line in shell_lines(code):
            if skipped(line):
                continue
            assert "[" not in line.split("#")[0], f"not a command: {line}"
            assert in_folder(rewrite(line), Path("."))[0].startswith("kinmerge "), \
                f"the walk runs only kinmerge lines; add this one to SKIP: {line}"


def test_the_walks_budget_cuts_apply(tmp_path):
    """The search examples' copies get the walk's budgets (a changed example line would
    otherwise run its full budget, minutes on a busy machine), and the clock is calibrated."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    cut_budgets(tmp_path / "examples")
    evolve = yaml.safe_load((tmp_path / "examples" / "evolve-zoo.yml").read_text())
    breed = yaml.safe_load((tmp_path / "examples" / "breed-zoo.yml").read_text())
    assert evolve["budget"]["trials"] == TRIALS and breed["budget"]["evaluations"] == EVALUATIONS
    original = yaml.safe_load((ROOT / "examples" / "evolve-zoo.yml").read_text())
    assert original["budget"]["trials"] > TRIALS  # the control: the shipped one is untouched
    assert any("evaluations=" in code for lang, code in blocks() if lang == "python")
    assert slowdown() >= 1.0


def test_lineage_show_names_a_generation_one_child():
    """Generation 1 merges every pair of the pool, so its children exist in every run."""
    names = re.findall(r"lineage show runs/breed/models/(\S+)", section())
    assert names and all(re.fullmatch(r"g1-\d\d", n) for n in names), names


@pytest.fixture(scope="module")
def walk_zoo(tmp_path_factory):
    """The tiny config with the shipped zoo's experts and parents (seconds to build)."""
    from dataclasses import replace

    from kinmerge.zoo.family import Expert, ZooConfig, build_zoo
    cfg = replace(ZooConfig.tiny(), parents=("rev", "sort"), experts=(
        Expert("add", "add", 1), Expert("add_seed2", "add", 2), Expert("rev", "rev", 1),
        Expert("sort", "sort", 1)))
    return build_zoo(tmp_path_factory.mktemp("walk") / "zoo", cfg)


def slowdown() -> float:
    """How many times slower than the development machine this one runs Python now (>= 1)."""
    t0 = time.perf_counter()
    sum(i * i for i in range(3_000_000))
    return max(1.0, (time.perf_counter() - t0) / CALIBRATION_S)


def cut_budgets(examples: Path) -> None:
    for name, (pattern, repl) in EXAMPLE_BUDGETS.items():
        path = examples / name
        text, n = re.subn(pattern, repl, path.read_text(), count=1, flags=re.M)
        assert n == 1, f"{name}: no budget line matching {pattern!r} to cut"
        path.write_text(text)


def _run(cmd: list[str], cwd: Path, env: dict, fails_with: str | None = None) -> None:
    factor = slowdown()
    limit = STEP_LIMIT_S * factor
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd[-1][:200]}: over {limit:.0f} s ({STEP_LIMIT_S:.0f} s x {factor:.1f}, "
                    f"the slowdown measured before it; load {os.getloadavg()[0]:.1f})")
    took = time.perf_counter() - t0  # shown with -s: what to size STEP_LIMIT_S by
    print(f"step {took:6.1f} s = {took / factor:5.1f} s x slowdown {factor:.1f} "
          f"(limit {limit:.0f} s): {cmd[-1].splitlines()[0][:80]}")
    if fails_with:
        assert r.returncode == 1 and fails_with in r.stderr + r.stdout, r.stderr[-3000:]
        return
    assert r.returncode == 0, f"{cmd[-1][:200]}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


@pytest.mark.slow
def test_walkthrough_runs_top_to_bottom(walk_zoo, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    cut_budgets(work / "examples")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "KINMERGE_CACHE": str(tmp_path / "c"),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    kinmerge = [sys.executable, "-c", "import sys; from kinmerge.cli import main; "
                "sys.argv[0] = 'kinmerge'; main()"]
    ran = 0
    for lang, code in blocks():
        if lang == "python":
            if "lm_eval" in code and importlib.util.find_spec("lm_eval") is None:
                continue  # lm-eval is an optional extra
            for pattern, repl in PY_REWRITE:
                code = re.sub(pattern, repl, code)
            _run([sys.executable, "-c", code], work, env)
            ran += 1
            continue
        for line in shell_lines(code):
            line = rewrite(line).replace("{zoo}", str(walk_zoo))
            if skipped(line):
                continue
            line, cwd = in_folder(line, work)
            if line.startswith("kinmerge zoo build zoo/"):
                shutil.copytree(walk_zoo, work / "zoo", dirs_exist_ok=True)
            else:
                assert line.startswith("kinmerge "), line
                fails = next((m for k, m in EXPECT_FAIL.items() if line.startswith(k)), None)
                _run(kinmerge + [*line.split("#")[0].split()[1:]], cwd, env, fails)
            ran += 1
    assert ran >= 15


def test_the_walk_covers_the_readme_and_every_guide_with_commands():
    """Moving a section between pages must keep it walked: the pages above hold every
    `kinmerge evolve|breed|soup|eval|zoo build` line of the docs' guides."""
    walked = section()
    for cmd in ("kinmerge zoo build zoo/", "kinmerge merge examples/task_arithmetic.yml",
                "kinmerge evolve examples/evolve-zoo.yml", "kinmerge breed examples/breed-zoo.yml",
                "kinmerge soup examples/soup-zoo.yml", "kinmerge eval "):
        assert cmd in walked, cmd
    guides = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs" / "guides").glob("*.md"))
    unwalked = {"docs/guides/merging.md", "docs/guides/kinship.md"}  # placeholder file names
    assert set(guides) - unwalked == {rel for rel, _, _ in WALK[1:]}
