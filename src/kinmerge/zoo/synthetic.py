"""Synthetic Llama checkpoints: the right names, shapes and config, random weights.

They load with `transformers.AutoModelForCausalLM` and cost no training, so tests can build
a base and its "fine-tunes" (base + small noise) in milliseconds, and benchmarks can build
billion-parameter models tensor by tensor without holding one in memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from kinmerge.io.reader import ModelReader
from kinmerge.io.writer import ShardedWriter
from kinmerge.seeds import tensor_seed


def llama_shapes(layers: int, hidden: int, intermediate: int, vocab: int, heads: int,
                 kv_heads: int, tie: bool) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a LlamaForCausalLM state dict, in file order."""
    hd = hidden // heads
    out = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (hidden,)),
                (p + "self_attn.q_proj.weight", (heads * hd, hidden)),
                (p + "self_attn.k_proj.weight", (kv_heads * hd, hidden)),
                (p + "self_attn.v_proj.weight", (kv_heads * hd, hidden)),
                (p + "self_attn.o_proj.weight", (hidden, heads * hd)),
                (p + "post_attention_layernorm.weight", (hidden,)),
                (p + "mlp.gate_proj.weight", (intermediate, hidden)),
                (p + "mlp.up_proj.weight", (intermediate, hidden)),
                (p + "mlp.down_proj.weight", (hidden, intermediate))]
    out.append(("model.norm.weight", (hidden,)))
    if not tie:
        out.append(("lm_head.weight", (vocab, hidden)))
    return sorted(out)


def synthetic_llama(out: str | Path, *, layers: int = 2, hidden: int = 16,
                    intermediate: int = 32, vocab: int = 64, heads: int = 2,
                    kv_heads: int | None = None, dtype: torch.dtype = torch.float32,
                    seed: int = 0, base: str | Path | None = None, delta: float = 0.01,
                    tie: bool = False, max_shard_bytes: int = 2**62) -> Path:
    """Write a random Llama checkpoint to `out`; with `base`, write base + delta * noise.

    >>> base = synthetic_llama("/tmp/base", seed=0)                        # doctest: +SKIP
    >>> ft = synthetic_llama("/tmp/ft1", base=base, seed=1, delta=0.02)    # doctest: +SKIP
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kv_heads = kv_heads or heads
    shapes = llama_shapes(layers, hidden, intermediate, vocab, heads, kv_heads, tie)
    parent = ModelReader(base) if base is not None else None
    writer = ShardedWriter(out, [(n, dtype, s) for n, s in shapes], max_shard_bytes)
    for name, shape in shapes:
        g = torch.Generator().manual_seed(tensor_seed(seed, name))
        noise = torch.randn(shape, generator=g, dtype=torch.float32)
        if parent is not None:
            t = parent.get(name).float() + delta * noise
        elif name.endswith("norm.weight"):
            t = 1.0 + 0.1 * noise
        else:
            t = noise * (1.0 / hidden**0.5)
        writer.add(name, t.to(dtype))
        del t, noise
    writer.close()
    if parent is not None:
        parent.close()
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": tie, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def synthetic_family(root: str | Path, *, fine_tunes: int = 2, delta: float = 0.05,
                     **shape) -> tuple[str, list[str]]:
    """A base (`root/base`, seed 0) and `fine_tunes` fine-tunes of it (`root/ft1`, ...: base +
    `delta` * noise, seeds 1, 2, ...), every one `synthetic_llama(**shape)`; their paths.

    >>> base, fts = synthetic_family("/tmp/fam", layers=3, hidden=16)    # doctest: +SKIP
    """
    root = Path(root)
    base = synthetic_llama(root / "base", seed=0, **shape)
    fts = [synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=delta, **shape)
           for i in range(1, fine_tunes + 1)]
    return str(base), [str(f) for f in fts]
