"""Bad inputs: one clear message that says what, where, and how to fix it."""
from __future__ import annotations

import json
import shutil

import pytest

from kinmerge.errors import KinmergeError, ModelLoadError
from kinmerge.io.reader import ModelReader
from kinmerge.kinship import kinship, kinship_matrix


def _copy(src, dst, drop=(), **config):
    r = ModelReader(src)
    tensors = {n: r.get(n) for n in r.names() if n not in drop}
    cfg = {**r.config, **config}
    r.close()
    from safetensors.torch import save_file

    dst.mkdir(parents=True)
    save_file(tensors, dst / "model.safetensors")
    (dst / "config.json").write_text(json.dumps(cfg))
    return str(dst)


def test_different_architectures(kin_family, tmp_path):
    other = _copy(kin_family["b"], tmp_path / "gpt", model_type="gpt2")
    with pytest.raises(KinmergeError) as e:
        kinship(kin_family["a"], other, base=kin_family["base"])
    msg = str(e.value)
    assert "different architectures" in msg and "gpt2" in msg and "llama" in msg
    assert "fix:" in msg and "same architecture" in msg


def test_missing_base(kin_family, tmp_path):
    with pytest.raises(KinmergeError, match="no base model given") as e:
        kinship(kin_family["a"], kin_family["b"], base=None)
    assert "as base=..." in str(e.value) and "--base" not in str(e.value)
    assert "--base BASE" in e.value.cli_message
    with pytest.raises(ModelLoadError, match="not found"):
        kinship(kin_family["a"], kin_family["b"], base=str(tmp_path / "nowhere"))


def test_missing_tensor_names_it(kin_family, tmp_path):
    gone = "model.layers.1.mlp.up_proj.weight"
    cut = _copy(kin_family["b"], tmp_path / "cut", drop=(gone,))
    with pytest.raises(KinmergeError) as e:
        kinship(kin_family["a"], cut, base=kin_family["base"])
    msg = str(e.value)
    assert f"lacks 1 tensor(s) of the base: {gone}" in msg and cut in msg


def test_shapes_that_differ_beyond_the_first_dimension(kin_family, tmp_path):
    r = ModelReader(kin_family["b"])
    tensors = {n: r.get(n) for n in r.names()}
    tensors["model.layers.0.mlp.down_proj.weight"] = tensors[
        "model.layers.0.mlp.down_proj.weight"][:, :40].contiguous()
    from safetensors.torch import save_file

    (tmp_path / "odd").mkdir()
    save_file(tensors, tmp_path / "odd" / "model.safetensors")
    shutil.copy(f"{kin_family['b']}/config.json", tmp_path / "odd")
    with pytest.raises(KinmergeError, match="differ beyond the first dimension") as e:
        kinship_matrix([kin_family["a"], str(tmp_path / "odd")], base=kin_family["base"])
    assert "model.layers.0.mlp.down_proj.weight" in str(e.value)


def test_bad_metric_compat_and_counts(kin_family):
    fam = kin_family
    with pytest.raises(KinmergeError, match="unknown kinship metric: cosine") as e:
        kinship(fam["a"], fam["b"], base=fam["base"], metrics="cs,cosine")
    assert "choose among cs, pcc, ed" in str(e.value)
    with pytest.raises(KinmergeError, match="unknown compatibility mode"):
        kinship(fam["a"], fam["b"], base=fam["base"], compat="mergekit")
    with pytest.raises(KinmergeError, match="at least two models"):
        kinship_matrix([fam["a"]], base=fam["base"])
    with pytest.raises(KinmergeError, match="per-layer breakdown is for two models"):
        kinship(fam["a"], fam["b"], fam["c"], base=fam["base"], per_layer=True)
