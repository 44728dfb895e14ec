"""Regenerate tests/data/parity_lora_golden.safetensors: mergekit's `model+lora` merges.

Tiny Llama bases (float32 and bfloat16, with the zoo's character tokenizer) and PEFT LoRA
adapters made by peft itself (in mergekit's venv): r=4, alpha=8, a rank_pattern and an
alpha_pattern, LoRA on q_proj, v_proj, down_proj and embed_tokens, lm_head in
modules_to_save; the bfloat16 one with use_rslora. `mergekit-yaml` merges recipes that name
`base+adapter`; the fixture keeps bases, adapters and outputs, so
tests/io/test_lora.py checks kinmerge's on-the-fly LoRA against them without peft.

    .venv/bin/python benchmarks/make_lora_golden.py [--mergekit-bin PATH]
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from safetensors import safe_open

from kinmerge.io.reader import ModelReader
from kinmerge.zoo.synthetic import synthetic_llama
from kinmerge.zoo.tokenizer import VOCAB, save_tokenizer

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "parity_lora_golden.safetensors"
sys.path.insert(0, str(Path(__file__).parent))
from parity_mergekit import ONE_THREAD, golden_args, mergekit_env, write_golden  # noqa: E402
TINY = dict(layers=2, hidden=8, intermediate=8, heads=2, kv_heads=1)
MAKE_ADAPTER = """
import sys, torch
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model
base, out, dtype, rslora = sys.argv[1], sys.argv[2], getattr(torch, sys.argv[3]), sys.argv[4] == "1"
m = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj",
                 "embed_tokens"], modules_to_save=["lm_head"], use_rslora=rslora,
                 rank_pattern={"v_proj": 2}, alpha_pattern={"down_proj": 3})
p = get_peft_model(m, cfg)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for n, t in p.named_parameters():
        if "lora" in n or "modules_to_save" in n:
            t.copy_(torch.randn(t.shape, generator=g) * 0.3)
p.save_pretrained(out)
"""
CASES = {
    "passthrough_f32": ("float32", {"merge_method": "passthrough", "models": [
        {"model": "base+lora"}]}),
    "passthrough_rslora_bf16": ("bfloat16", {"merge_method": "passthrough", "models": [
        {"model": "base+lora"}]}),
    "linear_with_lora_f32": ("float32", {"merge_method": "linear", "dtype": "float32",
                                         "models": [
        {"model": "base", "parameters": {"weight": 0.3}},
        {"model": "base+lora", "parameters": {"weight": 0.7}}]}),
}


def resolve(obj, base: str, lora: str):
    text = json.dumps(obj).replace('"base+lora"', json.dumps(f"{base}+{lora}"))
    return json.loads(text.replace('"base"', json.dumps(base)))


def main() -> int:
    args = golden_args(__doc__)
    if args is None:
        return 0
    mk_python = Path(args.mergekit_bin).parent / "python"
    root = Path(tempfile.mkdtemp(prefix="kinmerge-loragolden-"))
    env = mergekit_env()
    try:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict = {"mergekit": "0.1.5", "models": {}, "cases": {}}
        for dt in ("float32", "bfloat16"):
            base = synthetic_llama(root / f"base-{dt}", vocab=len(VOCAB), seed=0,
                                   dtype=getattr(torch, dt), **TINY)
            save_tokenizer(base)
            lora = root / f"lora-{dt}"
            subprocess.run([str(mk_python), "-c", MAKE_ADAPTER, str(base), str(lora), dt,
                            "1" if dt == "bfloat16" else "0"], check=True, env=env,
                           capture_output=True)
            with ModelReader(base) as r:
                tensors.update({f"base/{dt}/{n}": r.get(n) for n in r.names()})
            with safe_open(lora / "adapter_model.safetensors", "pt") as f:
                tensors.update({f"lora/{dt}/{k}": f.get_tensor(k) for k in f.keys()})
            meta["models"][dt] = {"config.json": (base / "config.json").read_text(),
                                  "adapter_config.json":
                                      (lora / "adapter_config.json").read_text()}
        for name, (dt, recipe) in CASES.items():
            rf = root / f"{name}.yml"
            rf.write_text(yaml.safe_dump(resolve(recipe, str(root / f"base-{dt}"),
                                                 str(root / f"lora-{dt}")), sort_keys=False))
            proc = subprocess.run([args.mergekit_bin, str(rf), str(root / name), "--quiet",
                                   "--no-copy-tokenizer", "--no-write-model-card",
                                   "--lora-merge-cache", str(root / "cache"), *ONE_THREAD],
                                  capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"mergekit-yaml failed on {name}:\n{proc.stderr[-3000:]}")
            with ModelReader(root / name) as r:
                tensors.update({f"out/{name}/{n}": r.get(n) for n in r.names()})
            meta["cases"][name] = {"dtype": dt, "recipe": recipe}
        write_golden(OUT, tensors, "kinmerge_lora_golden", meta, len(CASES))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
