"""kinmerge's defaults and accepted parameters against mergekit 0.1.5's own output, bit for bit.

tests/data/parity_defaults_golden.safetensors holds what `mergekit-yaml` wrote for each case
(regenerate with benchmarks/make_defaults_golden.py); the inputs are rebuilt here from their
seeds. Cases: breadcrumbs / breadcrumbs_ties with mergekit's defaults, breadcrumbs' rescale,
model_stock in float32 and bfloat16 (whole-tensor and filter_wise), task_arithmetic with
int8_mask, `parameters:` with no value and parameters it ignores, and TIES / breadcrumbs on
bfloat16 models with `--ties-topk mergekit` (stock mergekit's tie order).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import kinmerge
from parity_kit import resolve_refs
from kinmerge.zoo.synthetic import synthetic_llama

FIXTURE = Path(__file__).parents[1] / "data" / "parity_defaults_golden.safetensors"

with safe_open(FIXTURE, "pt") as _f:
    META = json.loads(_f.metadata()["kinmerge_golden"])
CASES = {c["name"]: c for c in META["cases"]}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("defaults_golden")
    paths = {}
    for dt in ("float32", "bfloat16"):
        d, dtype = root / dt, getattr(torch, dt)
        synthetic_llama(d / "base", dtype=dtype, seed=20, **META["shape"])
        for i, delta in META["fine_tunes"]:
            synthetic_llama(d / f"ft{i}", dtype=dtype, seed=20 + i, base=d / "base",
                            delta=delta, **META["shape"])
        paths[dt] = {m: str(d / m) for m in ("base", "ft1", "ft2", "ft3")}
    return paths


@pytest.mark.parametrize("threads", [1, 4])  # a merge's bytes do not follow the thread count
@pytest.mark.parametrize("name", sorted(CASES))
def test_bit_identical_to_mergekit(inputs, name, threads):
    case = CASES[name]
    merged = kinmerge.merge_to_memory(resolve_refs(case["recipe"], inputs[case["inputs"]]),
                                      ties_topk=case["topk"], threads=threads)
    with safe_open(FIXTURE, "pt") as f:
        want = {k.split("/", 1)[1]: f.get_tensor(k) for k in f.keys()
                if k.startswith(name + "/")}
    assert sorted(merged.tensors) == sorted(want)
    differing = {n: int((merged.tensors[n] != w).sum()) for n, w in want.items()
                 if not torch.equal(merged.tensors[n], w)}
    assert differing == {}


def test_stable_top_k_differs_from_stock_mergekit_on_bf16_ties(inputs):
    """The default order is not mergekit's where magnitudes tie: the option matters."""
    case = CASES["ties_mergekit_topk_bf16"]
    merged = kinmerge.merge_to_memory(resolve_refs(case["recipe"], inputs["bfloat16"]))
    with safe_open(FIXTURE, "pt") as f:
        name = "model.layers.0.mlp.down_proj.weight"
        want = f.get_tensor(f"ties_mergekit_topk_bf16/{name}")
    differ = (merged.tensors[name] != want).float().mean().item()
    assert 0 < differ < 0.05


def test_recipe_key_selects_mergekit_order(inputs):
    case = CASES["ties_mergekit_topk_bf16"]
    recipe = {**resolve_refs(case["recipe"], inputs["bfloat16"]), "kinmerge": {"topk": "mergekit"}}
    merged = kinmerge.merge_to_memory(recipe)
    with safe_open(FIXTURE, "pt") as f:
        name = "model.layers.1.self_attn.q_proj.weight"
        assert torch.equal(merged.tensors[name],
                           f.get_tensor(f"ties_mergekit_topk_bf16/{name}"))
