"""Issue 18, multi-stage writes: a stage name is a label, never a path; intermediates live in
OUT's own temporary area or in an --intermediate-dir checked like OUT; OUT is checked against
the inputs of every stage. Each data-loss case of the issue is reproduced here."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

import kinmerge
from kinmerge.cli import main
from kinmerge.errors import KinmergeError
from kinmerge.zoo.synthetic import synthetic_llama

KW = dict(layers=2, hidden=8, intermediate=8, vocab=8, heads=2)
N = "model.layers.1.mlp.up_proj.weight"


@pytest.fixture
def models(tmp_path):
    """work/base, work/ft1, work/ft2, owned by this test (the cases below try to lose them)."""
    root = tmp_path / "work"
    base = synthetic_llama(root / "base", seed=0, **KW)
    for i in (1, 2):
        synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **KW)
    return root


def docs(root: Path, first: str = "soup", ref: str | None = None) -> list[dict]:
    """Stage `first` (a linear soup of ft1, ft2), then the final merge onto base using it."""
    return [{"name": first, "merge_method": "linear",
             "models": [{"model": str(root / "ft1"), "parameters": {"weight": 1.0}},
                        {"model": str(root / "ft2"), "parameters": {"weight": 1.0}}]},
            {"merge_method": "task_arithmetic", "base_model": str(root / "base"),
             "models": [{"model": ref or first, "parameters": {"weight": 0.5}}]}]


def write(path: Path, documents: list[dict]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def keeper(path: Path) -> dict[str, str]:
    """A folder the user cares about (a model of theirs), with its fingerprint."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"mine": true}\n')
    (path / "model.safetensors").write_bytes(b"precious")
    return fingerprint(path)


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- the data-loss cases -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_a_stage_name_that_is_a_path_is_refused_before_anything_runs(models, tmp_path, kind):
    keep = tmp_path / "keep"
    before = keeper(keep)
    out = tmp_path / "runs" / "out"
    name = "../../keep" if kind == "relative" else str(keep)
    f = write(tmp_path / "multi.yml", docs(models, name))
    r = run(["merge", f, out, "--no-progress"])
    assert r.exit_code == 2, r.output
    assert f"document 1: stage name {name!r} is not a name" in r.output
    assert "a stage name is a label later stages refer to, never a path" in r.output
    assert "Traceback" not in r.output
    assert fingerprint(keep) == before
    assert not out.parent.exists()  # nothing ran, nothing was created


def test_intermediate_dir_holding_an_input_is_refused(models, tmp_path, monkeypatch):
    """--intermediate-dir . with a stage named like an input folder used to replace it."""
    before = fingerprint(models)
    monkeypatch.chdir(models)
    f = write(tmp_path / "multi.yml", docs(models, "ft1", ref="ft1"))
    r = run(["merge", f, tmp_path / "out", "--intermediate-dir", ".", "--no-progress"])
    assert r.exit_code == 2, r.output
    assert f"--intermediate-dir . holds input model {models / 'ft1'}" in r.output
    assert fingerprint(models) == before
    assert not (tmp_path / "out").exists()


def test_out_that_is_an_input_of_an_earlier_stage_is_refused(models, tmp_path):
    """`kinmerge merge multi.yml ft1 --overwrite`: ft1 is read by stage 1 only."""
    before = fingerprint(models)
    f = write(tmp_path / "multi.yml", docs(models))
    r = run(["merge", f, models / "ft1", "--overwrite", "--no-progress"])
    assert r.exit_code == 2, r.output
    assert f"OUT {models / 'ft1'} is input model {models / 'ft1'}" in r.output
    assert fingerprint(models) == before


# --- the rules behind them --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/b", "..", ".hidden", "-x", "a b", "x+y", "planned:x",
                                  "", "é" * 3, "a" * 65, "C:\\x"])
def test_stage_names_are_identifiers(models, tmp_path, name):
    f = write(tmp_path / "multi.yml", docs(models, name))
    with pytest.raises(KinmergeError) as e:
        kinmerge.merge_stages(f, tmp_path / "out")
    assert f"stage name {name!r} is not a name" in str(e.value)
    assert "fix: rename the stage" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.yml", "work"]


@pytest.mark.parametrize("name", ["soup", "first-merge", "llama-3.1_x", "A1"])
def test_ordinary_stage_names_still_run(models, tmp_path, name):
    f = write(tmp_path / "multi.yml", docs(models, name))
    out = kinmerge.merge_stages(f, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.yml", "out", "work"]
    assert N in load_file(out / "model.safetensors")


def test_intermediates_vanish_with_a_failed_run(models, tmp_path, monkeypatch):
    """Without --intermediate-dir the stages live in OUT's temporary area: a failure in the
    final stage leaves nothing beside OUT."""
    from kinmerge.core import multistage

    seen = []

    def fail(recipe, out, **kw):
        seen.extend(p.name for p in out.parent.iterdir())
        raise KinmergeError("boom")

    monkeypatch.setattr(multistage, "_final_merge", fail)
    f = write(tmp_path / "multi.yml", docs(models))
    with pytest.raises(KinmergeError, match="boom"):
        kinmerge.merge_stages(f, tmp_path / "runs" / "out")
    assert any(".out.kinmerge-tmp-" in n for n in seen), seen  # stages were in OUT's temp area
    assert not (tmp_path / "runs").exists()  # nothing beside OUT, not even the folder made


def test_intermediate_dir_is_checked_like_out(models, tmp_path):
    f = write(tmp_path / "multi.yml", docs(models))
    for bad, says in [(models / "ft2" / "stages", f"is inside input model {models / 'ft2'}"),
                      (models, f"holds input model"),
                      (tmp_path / "out", "is OUT")]:
        with pytest.raises(KinmergeError) as e:
            kinmerge.merge_stages(f, tmp_path / "out", intermediate_dir=bad)
        assert f"--intermediate-dir {bad} " in str(e.value) and says in str(e.value)
    inside = tmp_path / "out" / "stages"
    with pytest.raises(KinmergeError, match="is inside OUT"):
        kinmerge.merge_stages(f, tmp_path / "out", intermediate_dir=inside)
    # OUT may not be a stage's folder either
    with pytest.raises(KinmergeError, match="OUT .* is the folder of stage 'soup'"):
        kinmerge.merge_stages(f, tmp_path / "inter" / "soup", intermediate_dir=tmp_path / "inter")
    assert not (tmp_path / "out").exists() and not (tmp_path / "inter").exists()


def test_an_existing_stage_folder_is_replaced_only_with_overwrite(models, tmp_path):
    inter = tmp_path / "inter"
    f = write(tmp_path / "multi.yml", docs(models))
    kinmerge.merge_stages(f, tmp_path / "o1", intermediate_dir=inter)
    first = fingerprint(inter / "soup")
    # another recipe for the same stage name: refused without overwrite, the folder kept
    other = docs(models)
    other[0]["models"][0]["parameters"]["weight"] = 2.0
    g = write(tmp_path / "other.yml", other)
    with pytest.raises(KinmergeError) as e:
        kinmerge.merge_stages(g, tmp_path / "o2", intermediate_dir=inter)
    assert f"stage 'soup': {inter / 'soup'} already holds another merge" in str(e.value)
    assert "pass --overwrite to replace it" in str(e.value)
    assert fingerprint(inter / "soup") == first and not (tmp_path / "o2").exists()
    kinmerge.merge_stages(g, tmp_path / "o2", intermediate_dir=inter, overwrite=True)
    assert fingerprint(inter / "soup") != first
    # a folder that is not a model is never replaced, overwrite or not
    junk = inter / "soup"
    for p in junk.iterdir():
        p.unlink()
    (junk / "notes").mkdir()
    (junk / "notes" / "mine.txt").write_text("x")
    with pytest.raises(KinmergeError, match="is not a model folder"):
        kinmerge.merge_stages(f, tmp_path / "o3", intermediate_dir=inter, overwrite=True)
    assert (junk / "notes" / "mine.txt").read_text() == "x"


def test_stages_equal_separate_merges(models, tmp_path):
    """The control: the stage semantics are unchanged by where intermediates live."""
    d = docs(models)
    f = write(tmp_path / "multi.yml", d)
    out = kinmerge.merge_stages(f, tmp_path / "out")
    soup = kinmerge.merge({k: v for k, v in d[0].items() if k != "name"}, tmp_path / "soup")
    want = kinmerge.merge_to_memory(d[1] | {"models": [{"model": str(soup),
                                                        "parameters": {"weight": 0.5}}]})
    got = load_file(out / "model.safetensors")
    assert sorted(got) == sorted(want.tensors)
    assert all(torch.equal(got[n], want.tensors[n]) for n in got)
