"""The docs site: generated reference pages equal what the code renders, the nav points at
pages that exist, the README stays a five-minute read, and the site builds with --strict."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.docs import PAGES, REFERENCE, main as docs_main, render

ROOT = Path(__file__).parents[1]


def test_reference_pages_are_generated_from_the_code():
    """Add a method, an option or a config key without `python -m tools.docs`: fails."""
    for path, text in render().items():
        assert path.read_text() == text, f"{path.name}: run `python -m tools.docs`"
    assert sorted(p.name for p in REFERENCE.glob("*.md")) == sorted([*PAGES, "mergekit.md"])
    # the hand-written mergekit page's parameter table is the registry's too
    mergekit = (REFERENCE / "mergekit.md").read_text()
    assert "| `della_linear` | `weight`, `density` (1), `epsilon` (0.15) |" in mergekit


def test_reference_pages_name_every_method_command_and_key():
    from kinmerge.cli import main
    from kinmerge.core.recipe import Recipe
    from kinmerge.methods import REGISTRY
    from kinmerge.search.breed.config import BreedConfig

    methods = (REFERENCE / "methods.md").read_text()
    for name, m in REGISTRY.items():
        assert f"\n## {name}\n\n{m.summary}\n" in methods
        for p in m.params:
            assert f"| `{p.name}` |" in methods
    cli = (REFERENCE / "cli.md").read_text()
    for name in main.list_commands(None):
        assert f"## `kinmerge {name}`" in cli
    assert "| `--overwrite` | Replace OUT if it exists. |" in cli
    config = (REFERENCE / "config.md").read_text()
    for key in (*Recipe.model_fields, *BreedConfig.model_fields):
        assert f"| `{key}` |" in config
    # the comment the schema gives a field is its meaning
    assert ("| `device` | str | `cpu` | where children are merged and models scored (cpu, "
            "cuda, cuda:N) |") in config


def test_check_mode_names_a_stale_page(tmp_path, monkeypatch, capsys):
    import tools.docs as docs

    monkeypatch.setattr(docs, "REFERENCE", tmp_path)
    (tmp_path / "methods.md").write_text("hand edited\n")
    assert docs_main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "methods.md differs from the code" in err and "cli.md" in err
    assert docs_main([]) == 0 and docs_main(["--check"]) == 0  # the control: regenerated


def _nav_files(nav) -> list[str]:
    out = []
    for item in nav:
        for value in (item.values() if isinstance(item, dict) else [item]):
            out += _nav_files(value) if isinstance(value, list) else [value]
    return out


def test_nav_lists_every_page_and_each_exists():
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_files(cfg["nav"])
    # development.md is another author's page; every other entry must exist
    missing = [f for f in nav if not (ROOT / "docs" / f).is_file() and f != "development.md"]
    assert missing == []
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")
             if "_incoming" not in p.parts}
    assert pages - set(nav) == set(), "a page is missing from the nav"
    assert "_incoming/" in cfg["exclude_docs"]  # other helpers' drafts are not published


def test_readme_is_a_five_minute_read():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 250
    for must in ("make demo", "make test", "source .venv/bin/activate", ".venv/bin/kinmerge",
                 "## A first merge", "<!-- results:demo -->", "## Where next"):
        assert must in text, must
    # every docs link in the README names a page that exists (development.md aside)
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).is_file() or target == "docs/development.md", target


def test_no_docstring_cites_a_missing_page():
    cited = set()
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        assert "semantics.md" not in text, path
        cited |= set(re.findall(r"docs/[\w/-]+\.md", text))
    assert cited and all((ROOT / c).is_file() or c == "docs/development.md" for c in cited), cited


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or
                    importlib.util.find_spec("material") is None,
                    reason="mkdocs-material is not installed (`make docs` installs it)")
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                        str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "methods" / "index.html").is_file()
    assert not (tmp_path / "site" / "_incoming").exists()
    # the control: a broken link fails the strict build
    broken = ROOT / "docs" / "guides" / "soup.md"
    original = broken.read_text()
    try:
        broken.write_text(original + "\n[nowhere](no-such-page.md)\n")
        r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                            str(tmp_path / "site2")], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    finally:
        broken.write_text(original)
    assert r.returncode != 0 and "no-such-page.md" in r.stderr
