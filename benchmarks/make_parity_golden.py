"""Regenerate tests/data/parity_golden.safetensors: mergekit's outputs on hand-sized models.

The fixture holds tiny synthetic inputs (a base and three fine-tunes, float32 and bfloat16),
the recipes, and the tensors `mergekit-yaml` produced from them, so that
tests/test_parity_golden.py checks kinmerge against mergekit without mergekit installed.
Only numbers are stored. Run it where mergekit 0.1.5 is installed (see parity_mergekit.py):

    .venv/bin/python benchmarks/make_parity_golden.py [--mergekit-bin PATH]
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from parity_mergekit import T_GRADIENT, golden_args, resolve, run_mergekit, write_golden  # noqa: E402

from kinmerge.io.reader import ModelReader  # noqa: E402
from kinmerge.zoo.synthetic import synthetic_llama  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "parity_golden.safetensors"
TINY = dict(layers=3, hidden=8, intermediate=8, vocab=8, heads=2, kv_heads=1)
MODELS = ("base", "ft1", "ft2", "ft3")


def _m(entries):
    return [{"model": m, **({"parameters": p} if p else {})} for m, p in entries]


# (name, recipe, input dtype, a top-k trim with density < 1 is involved)
CASES = [
    ("linear_f32", {"merge_method": "linear", "dtype": "float32", "models": _m(
        [("ft1", {"weight": 0.5}), ("ft2", {"weight": 0.3}), ("ft3", {"weight": 0.2})])},
     "float32", False),
    ("linear_bf16", {"merge_method": "linear", "dtype": "bfloat16",
                     "parameters": {"normalize": False}, "models": _m(
        [("ft1", {"weight": 0.7}), ("ft2", {"weight": 0.6}), ("ft3", {"weight": -0.3})])},
     "bfloat16", False),
    ("slerp_f32", {"merge_method": "slerp", "dtype": "float32", "base_model": "base",
                   "models": _m([("base", None), ("ft1", None)]),
                   "parameters": {"t": T_GRADIENT}}, "float32", False),
    ("slerp_slices_bf16_to_f32", {
        "merge_method": "slerp", "dtype": "bfloat16", "out_dtype": "float32",
        "base_model": "base", "parameters": {"t": T_GRADIENT}, "slices": [
            {"sources": [{"model": "base", "layer_range": [0, 2]},
                         {"model": "ft2", "layer_range": [0, 2]}]},
            {"sources": [{"model": "base", "layer_range": [2, 3]},
                         {"model": "ft2", "layer_range": [2, 3]}]}]}, "bfloat16", False),
    ("task_arithmetic_f32", {"merge_method": "task_arithmetic", "dtype": "float32",
                             "base_model": "base", "parameters": {"normalize": True,
                                                                  "lambda": 0.7},
                             "models": _m([("ft1", {"weight": 1.0}), ("ft2", {"weight": 0.5}),
                                           ("ft3", {"weight": -0.4})])}, "float32", False),
    ("task_arithmetic_bf16", {"merge_method": "task_arithmetic", "dtype": "bfloat16",
                              "base_model": "base",
                              "models": _m([("base", None), ("ft1", {"weight": 1.0}),
                                            ("ft2", {"weight": -0.5})])}, "bfloat16", False),
    ("ties_f32", {"merge_method": "ties", "dtype": "float32", "base_model": "base",
                  "parameters": {"lambda": 0.9},
                  "models": _m([("ft1", {"weight": 0.5, "density": [1, 0.7, 0.1]}),
                                ("ft2", {"weight": 0.3, "density": [1, 0.7, 0.1]}),
                                ("ft3", {"weight": 0.2, "density": 0.6})])}, "float32", True),
    ("ties_bf16", {"merge_method": "ties", "dtype": "bfloat16", "base_model": "base",
                   "models": _m([("ft1", {"weight": 1.0, "density": 0.5}),
                                 ("ft2", {"weight": 0.7, "density": 0.3})])}, "bfloat16", True),
    ("dare_linear_d1_bf16", {"merge_method": "dare_linear", "dtype": "bfloat16",
                             "base_model": "base",
                             "models": _m([("ft1", {"weight": 0.5, "density": 1.0}),
                                           ("ft2", {"weight": 0.5, "density": 1.0})])},
     "bfloat16", False),
    ("dare_ties_d1_f32", {"merge_method": "dare_ties", "dtype": "float32",
                          "base_model": "base",
                          "models": _m([("ft1", {"weight": 0.5, "density": 1.0}),
                                        ("ft2", {"weight": 0.3, "density": 1.0}),
                                        ("ft3", {"weight": 0.2, "density": 1.0})])},
     "float32", False),
    ("passthrough_f32", {"merge_method": "passthrough", "dtype": "float32", "slices": [
        {"sources": [{"model": "ft1", "layer_range": [0, 2]}]},
        {"sources": [{"model": "ft2", "layer_range": [1, 3]}]}]}, "float32", False),
]


def build_inputs(root: Path) -> dict[str, dict[str, str]]:
    paths = {}
    for dt in ("float32", "bfloat16"):
        d, dtype = root / dt, getattr(torch, dt)
        synthetic_llama(d / "base", dtype=dtype, seed=10, **TINY)
        for i, delta in ((1, 0.02), (2, 0.04), (3, 0.03)):
            synthetic_llama(d / f"ft{i}", dtype=dtype, seed=10 + i, base=d / "base",
                            delta=delta, **TINY)
        paths[dt] = {m: str(d / m) for m in MODELS}
    return paths


def main() -> int:
    args = golden_args(__doc__)
    if args is None:
        return 0
    root = Path(tempfile.mkdtemp(prefix="kinmerge-golden-"))
    try:
        paths = build_inputs(root)
        # one flat tensor per model or output (names in sorted order; the layout, per layer
        # count, is in the metadata) keeps the header, hence the file, small
        tensors: dict[str, torch.Tensor] = {}
        layouts: dict[int, list] = {}

        def pack(key: str, path: Path) -> int:
            with ModelReader(path) as r:
                names = r.names()
                n_layers = r.config["num_hidden_layers"]
                layouts.setdefault(n_layers, [[n, list(r.shape(n))] for n in names])
                tensors[key] = torch.cat([r.get(n).reshape(-1) for n in names])
            return n_layers

        for dt, models in paths.items():
            for m, p in models.items():
                pack(f"in/{dt}/{m}", Path(p))
        cases = []
        for name, recipe, inputs, tie in CASES:
            rf = root / f"{name}.yml"
            rf.write_text(yaml.safe_dump(resolve(recipe, paths[inputs]), sort_keys=False))
            run_mergekit(args.mergekit_bin, rf, root / name)
            layers = pack(f"out/{name}", root / name)
            cases.append({"name": name, "recipe": recipe, "inputs": inputs, "tie_break": tie,
                          "num_hidden_layers": layers})
        meta = {"shape": TINY, "layouts": layouts, "cases": cases, "mergekit": "0.1.5"}
        write_golden(OUT, tensors, "kinmerge_golden", meta, len(cases))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
