"""Regenerate tests/data/parity_tokenizer_golden.safetensors: mergekit's vocabulary merges.

Inputs: a tiny Llama base with the zoo's character tokenizer and two fine-tunes that added
tokens (ft1: `<tool>`, `<think>` and the special `<|im_end|>`; ft2: `<think>`, `<code>`),
with one new embedding and lm_head row per added token. Each case's recipe sets
`tokenizer_source` or a `tokenizer:` block; `mergekit-yaml` merges it and the fixture keeps
its output tensors and output vocabulary (token -> id). The inputs (tensors, config and
tokenizer files) are stored too, so tests/test_parity_tokenizer.py needs no mergekit.

mergekit numbers the union's new tokens in the iteration order of a Python set of models
(it varies with PYTHONHASHSEED), so the test compares rows token by token, not by id.

    .venv/bin/python benchmarks/make_tokenizer_golden.py [--mergekit-bin PATH]
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer

from kinmerge.io.reader import ModelReader
from kinmerge.zoo.synthetic import synthetic_llama
from kinmerge.zoo.tokenizer import VOCAB, save_tokenizer
from kinmerge.zoo.vocab import with_added_tokens

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "parity_tokenizer_golden.safetensors"
sys.path.insert(0, str(Path(__file__).parent))
from parity_mergekit import ONE_THREAD, golden_args, mergekit_env, write_golden  # noqa: E402
TINY = dict(layers=2, hidden=8, intermediate=8, heads=2, kv_heads=1)
MODELS = ("base", "ft1", "ft2")
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
REF_KEYS = ("model", "base_model", "source", "tokenizer_source")


def _m(*entries):
    return [{"model": m, **({"parameters": p} if p else {})} for m, p in entries]


CASES = {
    "union_task_arithmetic_f32": {
        "merge_method": "task_arithmetic", "base_model": "base", "dtype": "float32",
        "tokenizer_source": "union",
        "models": _m(("ft1", {"weight": 0.6}), ("ft2", {"weight": 0.4}))},
    "union_linear_bf16": {
        "merge_method": "linear", "base_model": "base", "dtype": "bfloat16",
        "tokenizer_source": "union",
        "models": _m(("base", {"weight": 0.2}), ("ft1", {"weight": 0.5}),
                     ("ft2", {"weight": 0.3}))},
    "source_ft1_linear_f32": {
        "merge_method": "linear", "dtype": "float32", "tokenizer_source": "ft1",
        "models": _m(("ft1", {"weight": 0.5}), ("ft2", {"weight": 0.5}))},
    "base_dare_linear_f32": {
        "merge_method": "dare_linear", "base_model": "base", "dtype": "float32",
        "tokenizer_source": "base",
        "models": _m(("ft1", {"weight": 0.5, "density": 1.0}),
                     ("ft2", {"weight": 0.5, "density": 1.0}))},
    "block_tokens_pad_f32": {
        "merge_method": "task_arithmetic", "base_model": "base", "dtype": "float32",
        "tokenizer": {
            "source": "union", "pad_to_multiple_of": 8,
            "tokens": {
                "<think>": {"source": "ft2", "force": True},
                "<pad>": {"source": {"kind": "zero"}, "force": True},
                "<new>": {"source": {"kind": "model_token", "model": "ft1", "token": "<tool>"}},
                "<code>": {"source": {"kind": "model_token", "model": "ft2", "token_id": 5}},
            }},
        "models": _m(("ft1", {"weight": 1.0}), ("ft2", {"weight": 0.5}))},
}


# several documents: run by mergekit-multi, later stages naming earlier ones
MULTI = {
    "multi_union_slerp_linear_f32": [
        {"name": "stage-a", **CASES["union_task_arithmetic_f32"]},
        {"name": "stage-b", "merge_method": "slerp", "base_model": "ft1", "dtype": "float32",
         "tokenizer_source": "base", "parameters": {"t": 0.3},
         "models": _m(("ft1", None), ("ft2", None))},
        {"merge_method": "linear", "dtype": "float32", "tokenizer_source": "stage-a",
         "models": _m(("stage-a", {"weight": 0.5}), ("stage-b", {"weight": 0.5}))}],
}


def _is_ref(key, value, paths) -> bool:
    """A model name to replace by its path (`tokenizer_source: base` is the keyword)."""
    keyword = key in ("tokenizer_source", "source") and value in ("base", "union")
    return key in REF_KEYS and isinstance(value, str) and value in paths and not keyword


def resolve(obj, paths: dict[str, str]):
    """The recipe with model names replaced by paths (`source` keys included)."""
    if isinstance(obj, dict):
        return {k: (paths[v] if _is_ref(k, v, paths) else resolve(v, paths))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, paths) for v in obj]
    return obj


def build_inputs(root: Path) -> dict[str, str]:
    """The base and the two fine-tunes with added tokens, as model directories."""
    base = synthetic_llama(root / "base", vocab=len(VOCAB), seed=0, **TINY)
    save_tokenizer(base)
    paths = {"base": str(base)}
    for i, (plain, special) in ((1, (["<tool>", "<think>"], ["<|im_end|>"])),
                                (2, (["<think>", "<code>"], []))):
        raw = synthetic_llama(root / f"raw{i}", vocab=len(VOCAB), seed=i, base=base,
                              delta=0.05, **TINY)
        save_tokenizer(raw)
        paths[f"ft{i}"] = str(with_added_tokens(raw, root / f"ft{i}", plain, special=special,
                                                seed=i))
    return paths


def run_mergekit(bin_: str, recipe: Path, out: Path, multi: bool = False) -> None:
    env = mergekit_env(PYTHONHASHSEED="0")
    if multi:  # mergekit-multi takes OUT and the intermediate folder as options
        cmd = [str(Path(bin_).parent / "mergekit-multi"), str(recipe), "--out-path", str(out),
               "-I", str(out.parent / f"{out.name}-stages")]
    else:
        cmd = [bin_, str(recipe), str(out)]
    proc = subprocess.run(cmd + ["--no-write-model-card", "--quiet", "--random-seed", "0",
                                 *ONE_THREAD],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"mergekit-yaml failed on {recipe}:\n{proc.stderr[-3000:]}")


def main() -> int:
    args = golden_args(__doc__)
    if args is None:
        return 0
    root = Path(tempfile.mkdtemp(prefix="kinmerge-tokgolden-"))
    try:
        paths = build_inputs(root)
        tensors: dict[str, torch.Tensor] = {}
        meta: dict = {"mergekit": "0.1.5", "models": {}, "cases": {}}
        for m, p in paths.items():
            with ModelReader(p) as r:
                tensors.update({f"in/{m}/{n}": r.get(n) for n in r.names()})
            meta["models"][m] = {f: (Path(p) / f).read_text() for f in MODEL_FILES}
        for name, recipe in {**CASES, **MULTI}.items():
            rf = root / f"{name}.yml"
            multi = isinstance(recipe, list)
            docs = [resolve(d, paths) for d in recipe] if multi else [resolve(recipe, paths)]
            rf.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            run_mergekit(args.mergekit_bin, rf, root / name, multi)
            with ModelReader(root / name) as r:
                tensors.update({f"out/{name}/{n}": r.get(n) for n in r.names()})
            vocab = AutoTokenizer.from_pretrained(str(root / name)).get_vocab()
            meta["cases"][name] = {"recipe": recipe, "vocab": vocab}
        write_golden(OUT, tensors, "kinmerge_tokenizer_golden", meta, len(CASES) + len(MULTI))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
