"""The shipped zoo: packing, unpacking with digests, the properties it must show."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from kinmerge.errors import KinmergeError
from kinmerge.zoo import artifact
from kinmerge.zoo.cache import zoo
from kinmerge.zoo.family import ZooConfig
from kinmerge.zoo.properties import measure, problems


@pytest.fixture(scope="module")
def packed(tiny_zoo, tmp_path_factory):
    where = tmp_path_factory.mktemp("artifact")
    artifact.pack(tiny_zoo, where, version="t1")
    return where


def test_pack_then_unpack_is_exact_and_checked(packed, tiny_zoo, tmp_path):
    meta = json.loads((packed / "zoo-t1.json").read_text())
    assert set(meta["models"]) == {"base", "add", "add_seed2", "rev"}
    assert meta["artifact_sha256"] == artifact.sha256(packed / "zoo-t1.safetensors")
    out = artifact.materialize(tmp_path / "z", version="t1", where=packed)
    for name, m in meta["models"].items():
        assert artifact.sha256(out / name / "model.safetensors") == m["sha256"]
        got = load_file(out / name / "model.safetensors")
        want = load_file(tiny_zoo / name / "model.safetensors")
        assert got.keys() == want.keys()
        # float16 storage: every weight within float16 rounding of the trained one
        for k in want:
            assert got[k].dtype == torch.float32
            torch.testing.assert_close(got[k], want[k], rtol=2e-3, atol=2e-4)
    # the tasks and manifest are the trained zoo's
    for f in ["tasks/add/heldout.jsonl", "tasks/rev/search.jsonl", "tasks/text.txt"]:
        assert (out / f).read_bytes() == (tiny_zoo / f).read_bytes()
    manifest = json.loads((out / "zoo.json").read_text())
    assert manifest["source"] == "shipped zoo-t1"
    assert manifest["parents"] == ["add", "rev"]


def test_damaged_artifact_is_refused(packed, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(packed, bad)
    blob = bad / "zoo-t1.safetensors"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(KinmergeError, match="does not match its sha256"):
        artifact.materialize(tmp_path / "z", version="t1", where=bad)
    assert not (tmp_path / "z").exists()


def test_unpacked_model_digest_mismatch_is_refused(packed, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(packed, bad)
    meta = json.loads((bad / "zoo-t1.json").read_text())
    meta["models"]["rev"]["sha256"] = "0" * 64
    (bad / "zoo-t1.json").write_text(json.dumps(meta))
    with pytest.raises(KinmergeError, match="unpacked zoo model 'rev' has sha256"):
        artifact.materialize(tmp_path / "z", version="t1", where=bad)


def test_shipped_zoo_is_the_default_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    root = zoo()
    assert root.name == artifact.shipped_digest()
    assert json.loads((root / "zoo.json").read_text())["source"] == "shipped zoo-v1"
    stamp = (root / "rev/model.safetensors").stat().st_mtime_ns
    assert zoo() == root and (root / "rev/model.safetensors").stat().st_mtime_ns == stamp
    meta = artifact.shipped_manifest()
    for name, m in meta["models"].items():
        assert artifact.sha256(root / name / "model.safetensors") == m["sha256"]
    assert ZooConfig.from_dict(meta["config"]) == ZooConfig()


def test_shipped_zoo_has_the_properties(tmp_path):
    """Experts good at their own skill, the base bad at all, same-skill experts nearest kin
    (scores may differ in the last digit between CPUs; these properties may not)."""
    root = artifact.materialize(tmp_path / "zoo")
    p = measure(root)
    assert problems(p) == []
    assert p["skills"] == {"add": "add", "add_seed2": "add", "rev": "rev", "sort": "sort"}


def test_problems_name_each_broken_property():
    p = {"skills": {"a1": "add", "a2": "add", "r": "rev"},
         "scores": {"base": {"add": 0.2, "rev": 0.0}, "a1": {"add": 0.95, "rev": 0.0},
                    "a2": {"add": 0.5, "rev": 0.0}, "r": {"add": 0.0, "rev": 1.0}},
         "pcc": {"a1|a2": 0.1, "a1|r": 0.3, "a2|r": 0.05}}
    assert problems(p) == [
        "expert a2 scores 0.500 on add (needs >= 0.75)",
        "the base scores 0.200 on add (needs <= 0.1)",
        "same-skill kinship 0.100 is not above every cross-skill kinship (max 0.300)"]


def test_cli_builds_the_shipped_zoo_and_refuses_a_seed(tmp_path, monkeypatch):
    from kinmerge.cli import main
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, ["zoo", "build", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "shipped zoo-v1, sha256 of every model checked" in r.output
    assert (tmp_path / "out/sort/model.safetensors").is_file()
    r = CliRunner().invoke(main, ["zoo", "build", str(tmp_path / "o2"), "--seed", "1"])
    assert r.exit_code == 2
    assert "the shipped zoo is trained with seed 0, not 1" in r.output
    assert "add --from-scratch" in r.output
