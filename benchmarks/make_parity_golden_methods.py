"""Regenerate tests/data/parity_golden_methods.safetensors: mergekit's outputs for the methods
added for issue 9 (nuslerp ... ramplus_tl) on hand-sized models of five layouts.

Llama in bfloat16 with every recipe of parity_mergekit.method_recipes(), and Llama in float32,
Qwen2 (biases), Gemma 2 (tied embeddings), Phi-3 (fused qkv) and GPT-2 naming with the recipes
of SUBSET (one mergekit run costs 10-40 s; every recipe on every layout would take an hour): a
base and three fine-tunes each, and the tensors `mergekit-yaml` produced. Only numbers and
the recipes are stored; tests/merge/test_parity_methods.py compares kinmerge against them
without mergekit installed. Run it where mergekit 0.1.5 is installed:

    .venv/bin/python benchmarks/make_parity_golden_methods.py [--mergekit-bin PATH]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from parity_mergekit import (PORTABLE_KERNELS, golden_args, mergekit_env,  # noqa: E402
                             method_recipes, resolve, run_mergekit, write_golden)

from kinmerge.io.reader import ModelReader  # noqa: E402
from kinmerge.zoo.architectures import synthetic_model  # noqa: E402

OUT = (Path(__file__).resolve().parents[1] / "tests" / "data"
       / "parity_golden_methods.safetensors")
TINY = dict(layers=3, hidden=8, intermediate=8, vocab=8, heads=2, kv_heads=1)
MODELS = ("base", "ft1", "ft2", "ft3")
INPUTS = [("llama", "bfloat16"), ("llama", "float32"), ("qwen2", "bfloat16"),
          ("gemma2", "bfloat16"), ("phi3", "bfloat16"), ("gpt2", "bfloat16")]
# per input set, the recipes run (None: all); every method on each dtype, and on each other
# layout the recipes whose per-row / per-tensor logic meets what is special about it
SUBSET = {
    "llama/bfloat16": None,
    "llama/float32": ("nuslerp", "nuslerp_rows", "multislerp", "karcher", "sce_select_topk",
                      "nearswap", "arcee_fusion", "ramplus_tl"),
    "qwen2/bfloat16": ("nuslerp_rows", "multislerp", "sce_select_topk", "ram"),
    "gemma2/bfloat16": ("nuslerp", "karcher_base_joins", "arcee_fusion", "nearswap"),
    "phi3/bfloat16": ("nuslerp_row_wise", "sce", "ramplus_tl", "karcher"),
    "gpt2/bfloat16": ("nuslerp_rows", "multislerp_no_base", "arcee_fusion", "ram"),
}
PARALLEL = 3  # mergekit runs at a time (most of each is its start-up)
DONE = ".mergekit-done"  # marks a finished run in --work


def build_inputs(root: Path, arch: str, dtype: str) -> dict[str, str]:
    d, dt = root / arch / dtype, getattr(torch, dtype)
    synthetic_model(d / "base", arch, dtype=dt, seed=10, **TINY)
    for i, delta in ((1, 0.02), (2, 0.04), (3, 0.03)):
        synthetic_model(d / f"ft{i}", arch, dtype=dt, seed=10 + i, base=d / "base",
                        delta=delta, **TINY)
    return {m: str(d / m) for m in MODELS}


class Packer:
    """One flat tensor per model (names sorted); its layout and config in the metadata."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.layouts: dict[str, list] = {}
        self.configs: dict[str, dict] = {}

    def add(self, key: str, path: Path) -> tuple[str, str]:
        with ModelReader(path) as r:
            names = sorted(r.names())
            layout = [[n, list(r.shape(n))] for n in names]
            dtypes = {str(r.dtype(n)) for n in names}
            lid = str(next((k for k, v in self.layouts.items() if v == layout),
                           len(self.layouts)))
            self.layouts[lid] = layout
            if len(dtypes) > 1:
                raise ValueError(f"{path}: mixed dtypes {dtypes}")
            self.tensors[key] = torch.cat([r.get(n).reshape(-1) for n in names])
            config = {k: v for k, v in r.config.items() if k != "transformers_version"}
            cid = str(next((k for k, v in self.configs.items() if v == config),
                           len(self.configs)))
            self.configs[cid] = config
        return lid, cid


# methods whose output depends on the CPU's vector width (a threshold on softmax-based
# importances): mergekit runs them on torch's portable kernels, the same on every CPU, and
# tests/merge/test_parity_methods.py compares kinmerge under the same kernels
CPU_DEPENDENT = {"arcee_fusion"}


def _run(bin_: str, recipe_file: Path, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    portable = yaml.safe_load(recipe_file.read_text())["merge_method"] in CPU_DEPENDENT
    run_mergekit(bin_, recipe_file, out, mergekit_env(**(PORTABLE_KERNELS if portable else {})))
    (out / DONE).touch()
    return recipe_file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="working directory, kept; mergekit outputs "
                    "already in it are reused (default: a temp dir, removed)")
    args = golden_args(__doc__, ap)
    if args is None:
        return 0
    root = Path(args.work or tempfile.mkdtemp(prefix="kinmerge-golden-methods-"))
    pack, inputs, cases, runs = Packer(), {}, [], []
    try:
        for arch, dt in INPUTS:
            paths = build_inputs(root, arch, dt)
            inputs[f"{arch}/{dt}"] = {m: pack.add(f"in/{arch}/{dt}/{m}", Path(p))
                                      for m, p in paths.items()}
            only = SUBSET[f"{arch}/{dt}"]
            for name, recipe, _ in method_recipes():
                if only is not None and name not in only:
                    continue
                recipe = {**recipe, "dtype": dt}
                rf = root / f"{arch}-{dt}-{name}.yml"
                rf.write_text(yaml.safe_dump(resolve(recipe, paths), sort_keys=False))
                runs.append((rf, root / f"{arch}-{dt}-{name}"))
                cases.append({"name": name, "arch": arch, "dtype": dt, "recipe": recipe})
        todo = [(rf, out) for rf, out in runs if not (out / DONE).exists()]
        with ThreadPoolExecutor(PARALLEL) as pool:  # --work: finished runs are reused
            for rf in pool.map(lambda r: _run(args.mergekit_bin, *r), todo):
                print(f"ran {rf.stem}", flush=True)
        for case, (_, out) in zip(cases, runs):
            case["layout"], _ = pack.add(f"out/{case['arch']}/{case['dtype']}/{case['name']}",
                                         out)
        meta = {"shape": TINY, "inputs": inputs, "layouts": pack.layouts,
                "configs": pack.configs, "cases": cases, "mergekit": "0.1.5"}
        write_golden(OUT, pack.tensors, "kinmerge_golden", meta, len(cases))
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
