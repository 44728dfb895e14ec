"""nuslerp, multislerp, karcher, sce, nearswap, arcee_fusion, ram and ramplus_tl against
mergekit 0.1.5's own outputs, without mergekit installed.

tests/data/parity_golden_methods.safetensors holds hand-sized synthetic models (Llama in
float32 and bfloat16; Qwen2, Gemma 2, Phi-3 and GPT-2 layouts in bfloat16), the recipes, and
the tensors mergekit-yaml produced (regenerate with benchmarks/make_parity_golden_methods.py).
Every case was bit-exact where it was made; the tolerance (1 ulp float32, 2 bfloat16) only
absorbs a CPU whose vectorized sums round differently. Where mergekit stores float32 under
`dtype: bfloat16` (arcee_fusion, ramplus_tl: a float32 mask promotes the result), kinmerge
stores bfloat16, and mergekit's tensors are rounded before the comparison.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import kinmerge
from parity_kit import resolve_refs, ulps, unpack

FIXTURE = Path(__file__).parents[1] / "data" / "parity_golden_methods.safetensors"
ULP_TOL = {torch.float32: 1, torch.bfloat16: 2}
F32_RESULT = {"arcee_fusion", "ramplus_tl"}


def _meta() -> dict:
    with safe_open(FIXTURE, "pt") as f:
        return json.loads(f.metadata()["kinmerge_golden"])


META = _meta()
CASES = {f"{c['arch']}-{c['dtype']}-{c['name']}": c for c in META["cases"]}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    data = load_file(FIXTURE)
    root = tmp_path_factory.mktemp("golden-methods")
    paths: dict[str, dict[str, str]] = {}
    for key, models in META["inputs"].items():
        for model, (layout, config) in models.items():
            d = root / key / model
            d.mkdir(parents=True)
            save_file(unpack(data[f"in/{key}/{model}"], META["layouts"][layout]),
                      d / "model.safetensors", metadata={"format": "pt"})
            (d / "config.json").write_text(json.dumps(META["configs"][config]))
            paths.setdefault(key, {})[model] = str(d)
    return data, paths


def test_fixture_covers_every_new_method_and_layout():
    methods = {c["recipe"]["merge_method"] for c in META["cases"]}
    assert methods == {"nuslerp", "multislerp", "karcher", "sce", "nearswap", "arcee_fusion",
                       "ram", "ramplus_tl"}
    assert {c["arch"] for c in META["cases"]} == {"llama", "qwen2", "gemma2", "phi3", "gpt2"}
    assert FIXTURE.stat().st_size < 1_000_000


@pytest.mark.parametrize("key", sorted(CASES))
def test_matches_mergekit(golden, key):
    data, paths = golden
    case = CASES[key]
    inputs = f"{case['arch']}/{case['dtype']}"
    merged = kinmerge.merge_to_memory(resolve_refs(case["recipe"], paths[inputs]))
    want = unpack(data[f"out/{inputs}/{case['name']}"], META["layouts"][case["layout"]])
    assert sorted(merged.tensors) == sorted(want)
    dtype = getattr(torch, case["dtype"])
    worst, differing = 0, 0
    for n, w in want.items():
        got = merged.tensors[n]
        assert got.dtype == dtype and got.shape == w.shape, n
        if w.dtype != dtype:  # mergekit's float32 result under dtype: bfloat16
            assert case["name"] in F32_RESULT, n
            w = w.to(dtype)
        d = ulps(got, w)
        worst = max(worst, int(d.max()))
        differing += int((d > 0).sum())
    assert worst <= ULP_TOL[dtype], f"{worst} ulp, {differing} elements differ"
