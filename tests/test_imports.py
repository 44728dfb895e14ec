"""The import graph: the CLI is the top floor, and the merge and kinship paths stay light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "kinmerge"
HEAVY = ("transformers", "optuna", "matplotlib", "ray", "networkx", "rich.progress")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_module_below_the_cli_imports_it():
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        bad = sorted(n for n in _imports(path) if n == "kinmerge.cli" or
                     n.startswith("kinmerge.cli."))
        if bad:
            offenders[str(path.relative_to(SRC))] = bad
    assert offenders == {}


def _loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    env_path = str(SRC.parent)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=True)
    return [m for m in r.stdout.strip().split(",") if m]


def test_merge_and_kinship_paths_load_no_heavy_package():
    assert _loaded_after("import kinmerge.core.merge, kinmerge.kinship, kinmerge.core.execute") == []


def test_the_cli_loads_command_dependencies_lazily():
    assert _loaded_after("import kinmerge.cli") == []


def test_old_import_paths_still_work_and_warn():
    """The layout move kept every old module path for a release, as a deprecated stand-in."""
    probe = """
import warnings
warnings.simplefilter("error", DeprecationWarning)
import kinmerge
import kinmerge.merge          # the old module path, registered as a stand-in
assert callable(kinmerge.merge) and kinmerge.merge.__module__ == "kinmerge.core.merge"
try:
    from kinmerge.evolve import evolve
except DeprecationWarning as w:
    print(w)
warnings.simplefilter("ignore", DeprecationWarning)
from kinmerge.evolve import evolve
from kinmerge.search.evolve import evolve as new
from kinmerge.breed.summary import BreedSummary
from kinmerge.search.breed.summary import BreedSummary as new_summary
from kinmerge.configfile import read_yaml
from kinmerge.io.configfile import read_yaml as new_read
assert evolve is new and BreedSummary is new_summary and read_yaml is new_read
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "kinmerge.evolve moved to kinmerge.search.evolve; import it from there (the old path "
        "is removed in kinmerge 0.3)", "ok"]


def test_every_moved_module_exists_at_its_new_path():
    from kinmerge import _moved
    for old, new in _moved.all_moved().items():
        rel = Path(*new.split(".")[1:])
        assert (SRC / f"{rel}.py").is_file() or (SRC / rel / "__init__.py").is_file(), (old, new)


def _command_loads(args: list[str]) -> tuple[int, list[str], str]:
    """Run `kinmerge ARGS` in a fresh process; its exit code, the heavy packages it loaded
    (torch among them), and its output."""
    probe = (f"import sys\nsys.argv = ['kinmerge', *{args!r}]\n"
             "from kinmerge.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\n"
             f"print('LOADED=' + ','.join(m for m in ('torch', *{HEAVY!r}) "
             "if m in sys.modules))\nprint('EXIT=' + str(code))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=SRC.parents[1], check=True,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin",
                            "COLUMNS": "100"})
    lines = r.stdout.splitlines()
    loaded = [m for m in lines[-2].removeprefix("LOADED=").split(",") if m]
    return int(lines[-1].removeprefix("EXIT=")), loaded, "\n".join(lines[:-2])


def test_help_methods_and_validate_start_without_torch():
    """The commands users type all day answer before torch could even load (about 2 s)."""
    code, loaded, text = _command_loads(["--help"])
    assert (code, loaded) == (0, []) and "Commands:" in text
    code, loaded, text = _command_loads(["methods", "ties"])
    assert (code, loaded) == (0, []) and "ties" in text and "density" in text
    code, loaded, text = _command_loads(["validate", "examples/ties.yml", "--no-models"])
    assert (code, loaded) == (0, []) and text == "recipe OK (models not checked)"
    # the control: the same probe sees torch once a merge function is reached
    assert _loaded_after("import kinmerge", ("torch",)) == []
    assert _loaded_after("import kinmerge\nkinmerge.merge", ("torch",)) == ["torch"]


def test_lazy_public_names_are_the_real_ones():
    probe = """
import kinmerge, kinmerge.io, kinmerge.kinship
from kinmerge.core.merge import merge, MergedModel
from kinmerge.core.recipe import load_recipe
from kinmerge.io.reader import open_model
from kinmerge.kinship.measure import kinship
from kinmerge.methods import get_method
from kinmerge.methods.ties import ties
assert kinmerge.merge is merge and kinmerge.MergedModel is MergedModel
assert kinmerge.load_recipe is load_recipe and kinmerge.io.open_model is open_model
assert kinmerge.kinship.kinship is kinship and get_method("ties").fn is ties
assert set(kinmerge.__all__) <= set(dir(kinmerge))
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
