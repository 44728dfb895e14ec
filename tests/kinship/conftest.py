"""Kinship fixtures: checkpoints written tensor by tensor with chosen deltas, and a numpy
float64 reference computed on the concatenated delta vectors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from kinmerge.io.reader import ModelReader
from kinmerge.zoo.synthetic import synthetic_llama


def save_model(path: Path, tensors: dict[str, torch.Tensor], *, bin_format: bool = False,
               **config) -> str:
    """A model directory holding `tensors` and a llama config.json (overridable)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if bin_format:
        torch.save(tensors, path / "pytorch_model.bin")
    else:
        save_file(tensors, path / "model.safetensors")
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
           "num_hidden_layers": 2, "tie_word_embeddings": False, **config}
    (path / "config.json").write_text(json.dumps(cfg))
    return str(path)


def flat(path: str, names: list[str], rows: dict[str, int] | None = None) -> np.ndarray:
    """The model's tensors `names` (first `rows[name]` rows if given), float64, concatenated."""
    r = ModelReader(path)
    rows = rows or {}
    out = np.concatenate([r.get(n)[: rows.get(n)].double().numpy().ravel() for n in names])
    r.close()
    return out


def reference(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """cs, pcc, ed of two delta vectors, float64 numpy on the whole vectors."""
    return {"cs": float(x @ y / np.sqrt((x @ x) * (y @ y))),
            "pcc": float(np.corrcoef(x, y)[0, 1]),
            "ed": float(np.linalg.norm(x - y))}


@pytest.fixture
def kin_helpers():
    """save_model, flat and reference, for tests that build their own checkpoints."""
    return {"save": save_model, "flat": flat, "reference": reference}


@pytest.fixture(scope="session")
def kin_family(tmp_path_factory):
    """A float32 llama base, two unrelated fine-tunes, and a child of the first."""
    root = tmp_path_factory.mktemp("kin_family")
    kw = dict(layers=3, hidden=32, intermediate=48, vocab=50)
    base = synthetic_llama(root / "base", seed=0, **kw)
    a = synthetic_llama(root / "a", base=base, seed=1, delta=0.02, **kw)
    b = synthetic_llama(root / "b", base=base, seed=2, delta=0.02, **kw)
    c = synthetic_llama(root / "c", base=a, seed=3, delta=0.01, **kw)
    return {"base": str(base), "a": str(a), "b": str(b), "c": str(c), "root": root}


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few thousand elements, so every tensor is read in many slices."""
    from kinmerge.kinship import stream

    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 * 4 * 5000)
    return 5000
