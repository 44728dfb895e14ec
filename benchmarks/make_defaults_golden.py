"""Regenerate tests/data/parity_defaults_golden.safetensors: mergekit 0.1.5's outputs for the
cases where kinmerge changed to match it — default parameters (breadcrumbs, breadcrumbs_ties),
model_stock's arithmetic (float32, bfloat16, filter_wise), parameters mergekit accepts
(int8_mask, `parameters:` with no value, parameters a method ignores), and stock mergekit's
top-k tie order (kinmerge's `--ties-topk mergekit`) on bfloat16 models where ties are common.

Inputs are small enough to regenerate exactly (synthetic_llama is seeded per tensor), so only
mergekit's outputs are stored. Run where mergekit 0.1.5 is installed:

    .venv/bin/python benchmarks/make_defaults_golden.py [--mergekit-bin PATH]
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from parity_mergekit import golden_args, resolve, run_mergekit, write_golden  # noqa: E402

from kinmerge.io.reader import ModelReader  # noqa: E402
from kinmerge.zoo.synthetic import synthetic_llama  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "parity_defaults_golden.safetensors"
SHAPE = dict(layers=2, hidden=32, intermediate=32, vocab=32, heads=4, kv_heads=2)
FINE_TUNES = ((1, 0.02), (2, 0.04), (3, 0.03))


def _m(entries):
    return [{"model": m, **({"parameters": p} if p is not None else {})} for m, p in entries]


W = [("ft1", {"weight": 0.5}), ("ft2", {"weight": 0.3}), ("ft3", {"weight": 0.2})]
# (name, recipe, input dtype, kinmerge's top-k mode)
CASES = [
    ("breadcrumbs_defaults_f32", {"merge_method": "breadcrumbs", "base_model": "base",
                                  "dtype": "float32", "models": _m(W)}, "float32", "stable"),
    ("breadcrumbs_rescale_f32", {"merge_method": "breadcrumbs", "base_model": "base",
                                 "dtype": "float32", "parameters": {"rescale": True},
                                 "models": _m([(m, {**p, "density": 0.6, "gamma": 0.05})
                                               for m, p in W])}, "float32", "stable"),
    ("breadcrumbs_ties_defaults_f32", {"merge_method": "breadcrumbs_ties", "base_model": "base",
                                       "dtype": "float32",
                                       "models": _m([(m, {**p, "density": 0.7}) for m, p in W])},
     "float32", "stable"),
    ("model_stock_f32", {"merge_method": "model_stock", "base_model": "base",
                         "dtype": "float32", "models": _m([("ft1", None), ("ft2", None),
                                                           ("ft3", None)])}, "float32", "stable"),
    ("model_stock_bf16", {"merge_method": "model_stock", "base_model": "base",
                          "dtype": "bfloat16", "models": _m([("ft1", None), ("ft2", None),
                                                             ("ft3", None)])},
     "bfloat16", "stable"),
    ("model_stock_filter_wise_f32", {"merge_method": "model_stock", "base_model": "base",
                                     "dtype": "float32", "parameters": {"filter_wise": True},
                                     "models": _m([("ft1", None), ("ft2", None)])},
     "float32", "stable"),
    ("model_stock_filter_wise_bf16", {"merge_method": "model_stock", "base_model": "base",
                                      "dtype": "bfloat16", "parameters": {"filter_wise": True},
                                      "models": _m([("ft1", None), ("ft2", None),
                                                    ("ft3", None)])}, "bfloat16", "stable"),
    ("task_arithmetic_accepted_f32", {
        "merge_method": "task_arithmetic", "base_model": "base", "dtype": "float32",
        "parameters": {"int8_mask": True, "rescale": True, "normalize": True},
        "models": [{"model": "base", "parameters": None},
                   {"model": "ft1", "parameters": {"weight": 0.6, "density": 0.5}},
                   {"model": "ft2", "parameters": {"weight": 0.4, "density": 0.3}}]},
     "float32", "stable"),
    ("ties_mergekit_topk_bf16", {"merge_method": "ties", "base_model": "base",
                                 "dtype": "bfloat16", "parameters": {"int8_mask": True},
                                 "models": _m([("ft1", {"weight": 1.0, "density": 0.5}),
                                               ("ft2", {"weight": 0.7, "density": 0.3}),
                                               ("ft3", {"weight": 0.5, "density": 0.7})])},
     "bfloat16", "mergekit"),
    ("ties_mergekit_topk_f32_from_bf16", {
        "merge_method": "ties", "base_model": "base", "dtype": "float32",
        "out_dtype": "bfloat16",
        "models": _m([("ft1", {"weight": 1.0, "density": [0.2, 0.8]}),
                      ("ft2", {"weight": 0.5, "density": 0.4})])}, "bfloat16", "mergekit"),
    ("breadcrumbs_mergekit_topk_bf16", {
        "merge_method": "breadcrumbs_ties", "base_model": "base", "dtype": "bfloat16",
        "models": _m([("ft1", {"weight": 1.0, "density": 0.5, "gamma": 0.05}),
                      ("ft2", {"weight": 0.7, "density": 0.6, "gamma": 0.02})])},
     "bfloat16", "mergekit"),
]


def build_inputs(root: Path, dtype: str) -> dict[str, str]:
    """The base and three fine-tunes, deterministic from their seeds."""
    d, dt = root / dtype, getattr(torch, dtype)
    synthetic_llama(d / "base", dtype=dt, seed=20, **SHAPE)
    for i, delta in FINE_TUNES:
        synthetic_llama(d / f"ft{i}", dtype=dt, seed=20 + i, base=d / "base", delta=delta,
                        **SHAPE)
    return {m: str(d / m) for m in ("base", "ft1", "ft2", "ft3")}


def main() -> int:
    args = golden_args(__doc__)
    if args is None:
        return 0
    root = Path(tempfile.mkdtemp(prefix="kinmerge-defaults-golden-"))
    try:
        paths = {dt: build_inputs(root, dt) for dt in ("float32", "bfloat16")}
        tensors, cases = {}, []
        for name, recipe, inputs, topk in CASES:
            rf = root / f"{name}.yml"
            rf.write_text(yaml.safe_dump(resolve(recipe, paths[inputs]), sort_keys=False))
            run_mergekit(args.mergekit_bin, rf, root / name)
            with ModelReader(root / name) as r:
                for n in r.names():
                    tensors[f"{name}/{n}"] = r.get(n).contiguous()
            cases.append({"name": name, "recipe": recipe, "inputs": inputs, "topk": topk})
        meta = {"shape": SHAPE, "fine_tunes": FINE_TUNES, "cases": cases, "mergekit": "0.1.5"}
        write_golden(OUT, tensors, "kinmerge_golden", meta, len(cases))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
