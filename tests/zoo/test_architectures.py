"""The synthetic Qwen2 / Gemma 2 / Phi-3 / GPT-2 checkpoints load and run in transformers."""
import json

import pytest
import torch

from kinmerge.io.reader import ModelReader
from kinmerge.zoo.architectures import synthetic_model

TINY = dict(layers=2, hidden=8, intermediate=8, vocab=16, heads=2, kv_heads=1)


@pytest.mark.parametrize("arch,tied,marker", [
    ("qwen2", False, "model.layers.1.self_attn.q_proj.bias"),
    ("gemma2", True, "model.layers.1.pre_feedforward_layernorm.weight"),
    ("phi3", False, "model.layers.1.self_attn.qkv_proj.weight"),
    ("gpt2", True, "transformer.h.1.attn.c_attn.weight"),
])
def test_synthetic_architectures_load_in_transformers(tmp_path, arch, tied, marker):
    transformers = pytest.importorskip("transformers")
    base = synthetic_model(tmp_path / "base", arch, seed=0, **TINY)
    ft = synthetic_model(tmp_path / "ft", arch, seed=1, base=base, delta=0.5, **TINY)
    with ModelReader(base) as b, ModelReader(ft) as f:
        assert marker in b.names()
        assert ("lm_head.weight" in b.names()) is not tied
        d = (f.get(marker) - b.get(marker)).std().item()
        assert 0.3 < d < 0.7  # fine-tune = base + 0.5 * unit noise
    assert json.loads((base / "config.json").read_text())["model_type"] == arch
    model = transformers.AutoModelForCausalLM.from_pretrained(base)
    with ModelReader(base) as b:
        state = model.state_dict()
        assert set(b.names()) | ({"lm_head.weight"} if tied else set()) == set(state)
        assert torch.equal(state[marker], b.get(marker))
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 16) and torch.isfinite(logits).all()
