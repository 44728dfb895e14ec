"""Synthetic checkpoints of the layouts mergekit users bring besides Llama: Qwen2 (attention
biases), Gemma 2 (tied embeddings, four norms per layer), Phi-3 (fused qkv and gate_up) and
GPT-2 (`transformer.h.N.`, Conv1D weights, biases everywhere, tied embeddings).

Same idea as `synthetic.synthetic_llama`: the right names, shapes and config, random weights,
a base and its "fine-tunes" (base + delta * noise). Sized for parity tests, not for running.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from kinmerge.io.reader import ModelReader
from kinmerge.io.writer import ShardedWriter
from kinmerge.seeds import tensor_seed
from kinmerge.zoo.synthetic import llama_shapes, synthetic_llama

ARCHITECTURES = ("llama", "qwen2", "gemma2", "phi3", "gpt2")
Shapes = list[tuple[str, tuple[int, ...]]]


def qwen2_shapes(layers: int, hidden: int, intermediate: int, vocab: int, heads: int,
                 kv_heads: int) -> Shapes:
    hd = hidden // heads
    out = llama_shapes(layers, hidden, intermediate, vocab, heads, kv_heads, tie=False)
    for i in range(layers):
        p = f"model.layers.{i}.self_attn."
        out += [(p + "q_proj.bias", (heads * hd,)), (p + "k_proj.bias", (kv_heads * hd,)),
                (p + "v_proj.bias", (kv_heads * hd,))]
    return sorted(out)


def gemma2_shapes(layers: int, hidden: int, intermediate: int, vocab: int, heads: int,
                  kv_heads: int) -> Shapes:
    out = llama_shapes(layers, hidden, intermediate, vocab, heads, kv_heads, tie=True)
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "pre_feedforward_layernorm.weight", (hidden,)),
                (p + "post_feedforward_layernorm.weight", (hidden,))]
    return sorted(out)


def phi3_shapes(layers: int, hidden: int, intermediate: int, vocab: int, heads: int,
                kv_heads: int) -> Shapes:
    hd = hidden // heads
    out = [("model.embed_tokens.weight", (vocab, hidden)), ("model.norm.weight", (hidden,)),
           ("lm_head.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (hidden,)),
                (p + "post_attention_layernorm.weight", (hidden,)),
                (p + "self_attn.qkv_proj.weight", ((heads + 2 * kv_heads) * hd, hidden)),
                (p + "self_attn.o_proj.weight", (hidden, heads * hd)),
                (p + "mlp.gate_up_proj.weight", (2 * intermediate, hidden)),
                (p + "mlp.down_proj.weight", (hidden, intermediate))]
    return sorted(out)


def gpt2_shapes(layers: int, hidden: int, intermediate: int, vocab: int, heads: int,
                kv_heads: int, positions: int = 64) -> Shapes:
    out = [("transformer.wte.weight", (vocab, hidden)),
           ("transformer.wpe.weight", (positions, hidden)),
           ("transformer.ln_f.weight", (hidden,)), ("transformer.ln_f.bias", (hidden,))]
    for i in range(layers):
        p = f"transformer.h.{i}."
        out += [(p + f"{n}.{wb}", (hidden,)) for n in ("ln_1", "ln_2") for wb in ("weight", "bias")]
        out += [(p + "attn.c_attn.weight", (hidden, 3 * hidden)),  # Conv1D: (in, out)
                (p + "attn.c_attn.bias", (3 * hidden,)),
                (p + "attn.c_proj.weight", (hidden, hidden)), (p + "attn.c_proj.bias", (hidden,)),
                (p + "mlp.c_fc.weight", (hidden, intermediate)),
                (p + "mlp.c_fc.bias", (intermediate,)),
                (p + "mlp.c_proj.weight", (intermediate, hidden)),
                (p + "mlp.c_proj.bias", (hidden,))]
    return sorted(out)


def _config(arch: str, layers: int, hidden: int, intermediate: int, vocab: int, heads: int,
            kv_heads: int, dtype: torch.dtype) -> dict:
    dt = str(dtype).removeprefix("torch.")
    if arch == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": hidden,
                "n_layer": layers, "n_head": heads, "n_inner": intermediate,
                "n_positions": 64, "vocab_size": vocab, "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "bos_token_id": 1,
                "eos_token_id": 2, "torch_dtype": dt}
    names = {"qwen2": ("Qwen2ForCausalLM", {"tie_word_embeddings": False}),
             "gemma2": ("Gemma2ForCausalLM", {
                 "tie_word_embeddings": True, "head_dim": hidden // heads,
                 "query_pre_attn_scalar": hidden // heads, "sliding_window": 32,
                 "hidden_activation": "gelu_pytorch_tanh"}),
             "phi3": ("Phi3ForCausalLM", {"tie_word_embeddings": False})}
    cls, extra = names[arch]
    return {"architectures": [cls], "model_type": arch, "hidden_size": hidden,
            "intermediate_size": intermediate, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": dt,
            **extra}


SHAPES = {"qwen2": qwen2_shapes, "gemma2": gemma2_shapes, "phi3": phi3_shapes,
          "gpt2": gpt2_shapes}


def synthetic_model(out: str | Path, arch: str = "llama", *, layers: int = 2, hidden: int = 16,
                    intermediate: int = 32, vocab: int = 64, heads: int = 2,
                    kv_heads: int | None = None, dtype: torch.dtype = torch.float32,
                    seed: int = 0, base: str | Path | None = None,
                    delta: float = 0.01) -> Path:
    """Write a random checkpoint of `arch` (one of ARCHITECTURES) to `out`; with `base`,
    write base + delta * noise.

    >>> synthetic_model("/tmp/phi3-base", "phi3", seed=0)              # doctest: +SKIP
    """
    kv_heads = kv_heads or heads
    dims = dict(layers=layers, hidden=hidden, intermediate=intermediate, vocab=vocab,
                heads=heads, kv_heads=kv_heads)
    if arch == "llama":
        return synthetic_llama(out, dtype=dtype, seed=seed, base=base, delta=delta, **dims)
    if arch not in SHAPES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shapes = SHAPES[arch](**dims)
    parent = ModelReader(base) if base is not None else None
    writer = ShardedWriter(out, [(n, dtype, s) for n, s in shapes], 2**62)
    for name, shape in shapes:
        g = torch.Generator().manual_seed(tensor_seed(seed, name))
        noise = torch.randn(shape, generator=g, dtype=torch.float32)
        if parent is not None:
            t = parent.get(name).float() + delta * noise
        elif name.split(".")[-2].startswith("ln") or name.endswith("norm.weight"):
            t = (1.0 if name.endswith("weight") else 0.0) + 0.1 * noise
        else:
            t = noise * (1.0 / hidden**0.5)
        writer.add(name, t.to(dtype))
    writer.close()
    if parent is not None:
        parent.close()
    config = _config(arch, dtype=dtype, **dims)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out
