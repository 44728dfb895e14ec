"""LoRA on the fly (`base+lora`): hand-computed W + s·BA, peft's format, mergekit's outputs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import kinmerge
from kinmerge.cli import main
from kinmerge.errors import ModelLoadError
from kinmerge.io.lora import LoraModelReader, apply_lora, split_lora
from kinmerge.io.reader import ModelReader

FIXTURE = Path(__file__).parents[1] / "data" / "parity_lora_golden.safetensors"
Q = "model.layers.0.self_attn.q_proj.weight"
EMB = "model.embed_tokens.weight"


def write_adapter(d: Path, tensors: dict, **cfg) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "fan_in_fan_out": False,
              "use_rslora": False, "use_dora": False, **cfg}
    (d / "adapter_config.json").write_text(json.dumps(config))
    save_file({f"base_model.model.{k}": v for k, v in tensors.items()},
              d / "adapter_model.safetensors")
    return d


@pytest.fixture
def ab():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 16, generator=g), torch.randn(16, 2, generator=g)


def test_q_proj_gets_w_plus_scaled_ba(family, tmp_path, ab):
    a, b = ab
    lora = write_adapter(tmp_path / "lora", {"model.layers.0.self_attn.q_proj.lora_A.weight": a,
                                             "model.layers.0.self_attn.q_proj.lora_B.weight": b})
    r = LoraModelReader(f"{family['base']}+{lora}")
    w = ModelReader(family["base"]).get(Q)
    assert torch.equal(r.get(Q), w + (b @ a) * (4 / 2))
    other = "model.layers.1.self_attn.q_proj.weight"
    assert torch.equal(r.get(other), ModelReader(family["base"]).get(other))
    assert r.names() == ModelReader(family["base"]).names() and r.shape(Q) == (16, 16)


def test_rslora_patterns_and_fan_in_fan_out(family, tmp_path, ab):
    a, b = ab
    lora = write_adapter(tmp_path / "lora", {"model.layers.0.self_attn.q_proj.lora_A.weight": a,
                                             "model.layers.0.self_attn.q_proj.lora_B.weight": b},
                         r=8, lora_alpha=1, use_rslora=True, fan_in_fan_out=True,
                         rank_pattern={"q_proj": 2}, alpha_pattern={"self_attn.q_proj": 3})
    w = ModelReader(family["base"]).get(Q)
    got = LoraModelReader(f"{family['base']}+{lora}").get(Q)
    assert torch.equal(got, w + (b @ a).T * (3 / math.sqrt(2)))


def test_bfloat16_weight_rounded_once():
    w = torch.tensor([[1.0, 1.0]], dtype=torch.bfloat16)
    a, b = torch.tensor([[1e-3, 5e-3]]), torch.tensor([[1.0]])
    got = apply_lora(w, a, b, 1.0)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, (w.float() + b @ a).to(torch.bfloat16))


def test_split_lora_reference(tmp_path):
    assert split_lora("org/base+org/lora") == ("org/base", "org/lora")
    assert split_lora("org/base") == ("org/base", None)
    plus = tmp_path / "a+b"
    plus.mkdir()
    assert split_lora(str(plus)) == (str(plus), None)  # an existing path is taken as is
    with pytest.raises(ModelLoadError, match="expected `model` or `model\\+lora`"):
        split_lora("a+b+c")


def test_dora_is_refused(family, tmp_path, ab):
    lora = write_adapter(tmp_path / "lora", {}, use_dora=True)
    with pytest.raises(ModelLoadError) as e:
        LoraModelReader(f"{family['base']}+{lora}")
    assert "DoRA (use_dora) adapters are not supported, only plain LoRA" in str(e.value)


def test_adapter_for_another_model(family, tmp_path, ab):
    a, b = ab
    lora = write_adapter(tmp_path / "lora", {"model.layers.9.mlp.up_proj.lora_A.weight": a,
                                             "model.layers.9.mlp.up_proj.lora_B.weight": b})
    with pytest.raises(ModelLoadError) as e:
        LoraModelReader(f"{family['base']}+{lora}")
    assert ("the adapter targets 1 tensor(s) the model lacks (first: "
            "model.layers.9.mlp.up_proj.weight)") in str(e.value)


def test_lora_merge_cli_and_in_a_recipe(family, tmp_path, ab):
    a, b = ab
    lora = write_adapter(tmp_path / "lora", {"model.layers.0.self_attn.q_proj.lora_A.weight": a,
                                             "model.layers.0.self_attn.q_proj.lora_B.weight": b})
    ref = f"{family['base']}+{lora}"
    res = CliRunner().invoke(main, ["lora-merge", ref, str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 0, res.output
    got = load_file(tmp_path / "out" / "model.safetensors")
    w = ModelReader(family["base"]).get(Q)
    assert torch.equal(got[Q], w + (b @ a) * 2.0)
    lineage = json.loads((tmp_path / "out" / "lineage.json").read_text())
    assert ref in json.dumps(lineage)
    # as one model of a merge: the fine-tune delta is the LoRA update
    r = {"merge_method": "task_arithmetic", "base_model": family["base"],
         "models": [{"model": ref, "parameters": {"weight": 0.5}}]}
    merged = kinmerge.merge_to_memory(r).tensors[Q]
    torch.testing.assert_close(merged, w + 0.5 * (b @ a) * 2.0)
    res = CliRunner().invoke(main, ["lora-merge", family["base"], str(tmp_path / "o2")])
    assert res.exit_code == 2 and "names no LoRA adapter" in res.output


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    data = load_file(FIXTURE)
    with safe_open(FIXTURE, "pt") as f:
        meta = json.loads(f.metadata()["kinmerge_lora_golden"])
    root = tmp_path_factory.mktemp("loragolden")
    for dt, files in meta["models"].items():
        base, lora = root / f"base-{dt}", root / f"lora-{dt}"
        base.mkdir(), lora.mkdir()
        save_file({k.split("/", 2)[2]: v for k, v in data.items() if k.startswith(f"base/{dt}/")},
                  base / "model.safetensors", metadata={"format": "pt"})
        save_file({k.split("/", 2)[2]: v for k, v in data.items() if k.startswith(f"lora/{dt}/")},
                  lora / "adapter_model.safetensors", metadata={"format": "pt"})
        (base / "config.json").write_text(files["config.json"])
        (lora / "adapter_config.json").write_text(files["adapter_config.json"])
    return data, meta, root


@pytest.mark.parametrize("name", ["passthrough_f32", "passthrough_rslora_bf16",
                                  "linear_with_lora_f32"])
def test_matches_mergekit_and_peft(golden, name):
    data, meta, root = golden
    case = meta["cases"][name]
    base, lora = str(root / f"base-{case['dtype']}"), str(root / f"lora-{case['dtype']}")
    text = json.dumps(case["recipe"]).replace('"base+lora"', json.dumps(f"{base}+{lora}"))
    recipe = json.loads(text.replace('"base"', json.dumps(base)))
    got = kinmerge.merge_to_memory(recipe).tensors
    want = {k.split("/", 2)[2]: v for k, v in data.items() if k.startswith(f"out/{name}/")}
    assert sorted(got) == sorted(want)
    for n, w in want.items():
        assert got[n].dtype == w.dtype and torch.equal(got[n], w), n


def test_kinship_of_a_lora_fine_tune(family, tmp_path, ab):
    """A `base+lora` reference works wherever a model goes; kinship streams its merged
    tensors in chunks (the reader keeps the last merged tensor, not one merge per chunk)."""
    from kinmerge.kinship.measure import kinship
    a, b = ab
    lora = write_adapter(tmp_path / "lora", {"model.layers.0.self_attn.q_proj.lora_A.weight": a,
                                             "model.layers.0.self_attn.q_proj.lora_B.weight": b})
    base, ft = ModelReader(family["base"]), ModelReader(family["ft"][0])
    d_lora = ((b @ a) * 2.0).double().flatten()
    d_ft = (ft.get(Q) - base.get(Q)).double().flatten()
    ft_norm2 = sum(float(((ft.get(n) - base.get(n)).double() ** 2).sum()) for n in base.names())
    want = float(d_lora @ d_ft) / math.sqrt(float(d_lora @ d_lora) * ft_norm2)
    k = kinship(f"{family['base']}+{lora}", family["ft"][0], base=family["base"], metrics="cs")
    assert k["cs"] == pytest.approx(want, rel=1e-6)


def test_out_may_not_be_the_adapter_folder(family, tmp_path, ab):
    a, b = ab
    lora = write_adapter(tmp_path / "lora", {"model.layers.0.self_attn.q_proj.lora_A.weight": a,
                                             "model.layers.0.self_attn.q_proj.lora_B.weight": b})
    with pytest.raises(kinmerge.KinmergeError, match="writing there could overwrite or delete"):
        kinmerge.lora_merge(f"{family['base']}+{lora}", lora, overwrite=True)
    assert (lora / "adapter_model.safetensors").is_file()
