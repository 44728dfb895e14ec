"""Vocabulary merges against mergekit 0.1.5's own outputs, without mergekit installed.

tests/data/parity_tokenizer_golden.safetensors (benchmarks/make_tokenizer_golden.py) holds a
tiny base with the zoo's character tokenizer, two fine-tunes that added tokens, recipes with
`tokenizer_source: union | base | <model>` and the `tokenizer:` block, and the tensors and
vocabulary mergekit-yaml produced. mergekit numbers the union's new tokens in a set's order
(it changes with PYTHONHASHSEED), so rows are compared token by token; the tokens and the
row count must be the same, and every row bit for bit. One case is a multi-stage recipe
(mergekit-multi) whose final stage merges two earlier stages' outputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

import kinmerge
from kinmerge.tokenizer.vocab import is_vocab_tensor

FIXTURE = Path(__file__).parent / "data" / "parity_tokenizer_golden.safetensors"
REF_KEYS = ("model", "base_model", "source", "tokenizer_source")

with safe_open(FIXTURE, "pt") as _f:
    META = json.loads(_f.metadata()["kinmerge_tokenizer_golden"])


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    data = load_file(FIXTURE)
    root = tmp_path_factory.mktemp("tokgolden")
    paths = {}
    for m, files in META["models"].items():
        d = root / m
        d.mkdir()
        prefix = f"in/{m}/"
        save_file({k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)},
                  d / "model.safetensors", metadata={"format": "pt"})
        for name, text in files.items():
            (d / name).write_text(text)
        paths[m] = str(d)
    return data, paths, root


def _is_ref(key, value, paths) -> bool:
    """A model name to replace by its path (`tokenizer_source: base` is the keyword)."""
    keyword = key in ("tokenizer_source", "source") and value in ("base", "union")
    return key in REF_KEYS and isinstance(value, str) and value in paths and not keyword


def _resolve(obj, paths):
    if isinstance(obj, dict):
        return {k: (paths[v] if _is_ref(k, v, paths) else _resolve(v, paths))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, paths) for v in obj]
    return obj


@pytest.mark.parametrize("name", sorted(META["cases"]))
def test_vocabulary_merge_matches_mergekit(golden, name):
    data, paths, root = golden
    case = META["cases"][name]
    if isinstance(case["recipe"], list):  # a multi-stage recipe, as mergekit-multi ran it
        f = root / f"{name}.yml"
        f.write_text(yaml.safe_dump_all([_resolve(d, paths) for d in case["recipe"]]))
        out = kinmerge.merge_stages(f, root / f"out-{name}")
    else:
        out = kinmerge.merge(_resolve(case["recipe"], paths), root / f"out-{name}")
    got_vocab = AutoTokenizer.from_pretrained(str(out)).get_vocab()
    want_vocab = case["vocab"]
    assert sorted(got_vocab) == sorted(want_vocab)
    prefix = f"out/{name}/"
    want = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    got = load_file(out / "model.safetensors")
    assert sorted(got) == sorted(want)
    config = json.loads((out / "config.json").read_text())
    for n, w in want.items():
        g = got[n]
        assert g.dtype == w.dtype and g.shape == w.shape, n
        if is_vocab_tensor(n):
            assert config["vocab_size"] == g.shape[0]
            toks = sorted(want_vocab, key=want_vocab.get)
            g_rows = g[[got_vocab[t] for t in toks]]
            w_rows = w[[want_vocab[t] for t in toks]]
            assert torch.equal(g_rows, w_rows), f"{n}: rows differ"
            # padding rows (pad_to_multiple_of) are each input's mean row: bit for bit when
            # mergekit numbered the tokens as kinmerge does, else summed in another row order
            if got_vocab == want_vocab:
                assert torch.equal(g[len(toks):], w[len(toks):]), f"{n}: padding rows differ"
            else:
                torch.testing.assert_close(g[len(toks):], w[len(toks):], rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(g, w), n
