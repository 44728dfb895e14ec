"""Mixture-of-experts checkpoints (Mixtral): the layout kinmerge writes loads in transformers,
and every expert's tensors of a layer are that layer's for merges, slices and gradients."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import kinmerge
from kinmerge.io.reader import ModelReader
from kinmerge.core.layers import detect

transformers = pytest.importorskip("transformers")
E = 4  # experts per layer


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    """A tiny Mixtral base and two fine-tunes, saved by transformers (per-expert tensors:
    block_sparse_moe.experts.E.w1/w2/w3, the layout of Hub checkpoints)."""
    root = tmp_path_factory.mktemp("mixtral")
    cfg = transformers.MixtralConfig(vocab_size=64, hidden_size=16, intermediate_size=24,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     num_key_value_heads=1, num_local_experts=E,
                                     num_experts_per_tok=2, max_position_embeddings=64)
    paths = []
    for i in range(3):
        torch.manual_seed(i)
        transformers.MixtralForCausalLM(cfg).save_pretrained(root / f"m{i}")
        paths.append(str(root / f"m{i}"))
    return paths


def load_checked(path):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        str(path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    logits = model(torch.tensor([[1, 2, 3, 4]])).logits
    assert logits.shape == (1, 4, 64) and torch.isfinite(logits).all()
    return model


def test_writes_per_expert_tensors_that_transformers_loads(mixtral, tmp_path):
    base, a, b = mixtral
    r = {"merge_method": "ties", "base_model": base, "models": [
        {"model": a, "parameters": {"weight": 0.6, "density": 0.5}},
        {"model": b, "parameters": {"weight": 0.4, "density": 0.5}}]}
    out = kinmerge.merge(r, tmp_path / "m")
    got = load_file(out / "model.safetensors")
    assert sorted(got) == ModelReader(base).names()
    assert "model.layers.1.block_sparse_moe.experts.3.w2.weight" in got
    model = load_checked(out)
    # transformers fuses the experts in memory and writes them back per expert, unchanged
    model.save_pretrained(tmp_path / "resaved")
    again = load_file(tmp_path / "resaved" / "model.safetensors")
    assert sorted(again) == sorted(got) and all(torch.equal(again[n], got[n]) for n in got)


def test_every_expert_tensor_belongs_to_its_layer(mixtral):
    r = ModelReader(mixtral[0])
    s = detect(r.names(), r.config)
    assert (s.prefix, s.num_layers) == ("model.layers.", 2)
    experts = [n for n in r.names() if ".experts." in n]
    assert len(experts) == 2 * E * 3
    assert all(s.index(n) == int(n.split(".")[2]) for n in experts)


def test_gradient_reaches_every_expert_of_a_layer(mixtral):
    base, a, _ = mixtral
    r = {"merge_method": "slerp", "base_model": base, "parameters": {"t": [0.0, 1.0]},
         "models": [{"model": base}, {"model": a}]}
    got = kinmerge.merge_to_memory(r).tensors
    rb, ra = ModelReader(base), ModelReader(a)
    for n, t in got.items():
        if n.startswith("model.layers.0."):
            assert torch.equal(t, rb.get(n)), n
        elif n.startswith("model.layers.1."):
            torch.testing.assert_close(t, ra.get(n), msg=n)


def test_slices_move_all_experts_with_their_layer(mixtral, tmp_path):
    _, a, b = mixtral
    r = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": a, "layer_range": [0, 2]}]},
        {"sources": [{"model": b, "layer_range": [1, 2]}]}]}
    out = kinmerge.merge(r, tmp_path / "stack")
    got = load_file(out / "model.safetensors")
    rb = ModelReader(b)
    for e in range(E):
        for w in ("w1", "w2", "w3"):
            n = f"block_sparse_moe.experts.{e}.{w}.weight"
            assert torch.equal(got[f"model.layers.2.{n}"], rb.get(f"model.layers.1.{n}"))
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 3
    load_checked(out)


def test_fused_expert_checkpoints_merge_and_load_too(mixtral, tmp_path):
    """transformers 5's in-memory layout (mlp.experts.gate_up_proj, as mergekit 0.1.5 writes
    it under transformers 5) is merged tensor by tensor and written as it came."""
    fused = []
    for i, p in enumerate(mixtral[:2]):
        model = transformers.AutoModelForCausalLM.from_pretrained(p)
        d = tmp_path / f"fused{i}"
        d.mkdir()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  d / "model.safetensors", metadata={"format": "pt"})
        (d / "config.json").write_text(open(f"{p}/config.json").read())
        fused.append(str(d))
    r = {"merge_method": "linear", "models": [{"model": f, "parameters": {"weight": 0.5}}
                                              for f in fused]}
    out = kinmerge.merge(r, tmp_path / "m")
    got = load_file(out / "model.safetensors")
    n = "model.layers.1.mlp.experts.gate_up_proj"
    assert got[n].shape == (E, 48, 16)
    model = load_checked(out)
    assert torch.equal(model.state_dict()[n], got[n])
