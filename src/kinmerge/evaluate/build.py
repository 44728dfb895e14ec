"""Weights to a runnable causal LM: the one place a module is built, for every caller.

`build(weights, config, device, dtype)` returns a fresh module the caller owns (nothing is
cached or shared, so hooks or edits on one model never reach the next). Its parameters are
the given tensors, assigned rather than copied where device and dtype already match.

Rules, the same for a model directory, a merge in memory and an evolution candidate:
- dtype: the one given, else the weights' own floating dtype (what the merge produced or the
  folder stores), else the config's `dtype` / `torch_dtype`, else float32;
- tied embeddings: with `tie_word_embeddings` and no `lm_head.weight`, the head is the
  embedding matrix (one shared parameter); any other missing or unexpected tensor is an error.

>>> module = build(kinmerge.merge_to_memory(recipe).tensors, config, "cpu")  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)
TOKENIZER_CACHE = 16  # tokenizers kept per process (least recently used dropped)


def build(weights: Mapping[str, torch.Tensor], config: dict, device: str | torch.device = "cpu",
          dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A causal LM of `config`'s architecture in eval mode on `device`, holding `weights`."""
    dtype = dtype or weights_dtype(weights, config)
    tensors = {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
               for k, v in weights.items()}
    with _no_init():
        module = new_module(config, dtype)
    missing, unexpected = module.load_state_dict(tensors, strict=False, assign=True)
    if unexpected:
        raise KinmergeError(f"the weights hold tensors the model does not have: "
                            f"{sorted(unexpected)[:5]}", where="build",
                            fix="the weights must belong to the architecture in config.json")
    if getattr(module.config, "tie_word_embeddings", False):
        module.tie_weights()
        missing = [m for m in missing if m != "lm_head.weight"]
    if missing:
        raise KinmergeError(f"the weights lack tensors of the model: {sorted(missing)[:5]}",
                            where="build", fix="give every tensor of the architecture")
    return module.to(device).eval()


def weights_dtype(weights: Mapping[str, torch.Tensor], config: dict) -> torch.dtype:
    """The weights' floating dtype when they share one; else the config's; else float32."""
    kinds = {t.dtype for t in weights.values() if t.is_floating_point()}
    if len(kinds) == 1:
        return next(iter(kinds))
    from kinmerge.core.dtypes import DTYPES, dtype_of

    name = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    name = name.removeprefix("torch.")
    return dtype_of(name) if name in DTYPES else torch.float32


def new_module(config: dict, dtype: torch.dtype) -> Any:
    """A causal LM of the architecture config.json describes (its weights uninitialised)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version")}
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(config["model_type"], **cfg),
                                            dtype=dtype)


@contextlib.contextmanager
def _no_init():
    """Skip random initialisation (every parameter is replaced right after); transformers
    restores its init functions on exit."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialise, slower but the same result
        yield
        return
    with no_init_weights():
        yield


def apply_scales(model: torch.nn.Module, scales: Sequence[float]) -> None:
    """Multiply the hidden state entering decoder layer p by scales[p] (forward pre-hooks);
    evolution's data-flow merges (DFS) are such a model."""
    layers = model.model.layers
    if len(layers) != len(scales):
        raise ValueError(f"{len(scales)} scales for a model with {len(layers)} layers")
    for layer, s in zip(layers, scales):
        if s != 1.0:
            layer.register_forward_pre_hook(_scale_hook(float(s)), with_kwargs=True)


def _scale_hook(s: float):
    def hook(module, args, kwargs):
        if args:  # transformers passes hidden_states positionally
            return (args[0] * s, *args[1:]), kwargs
        kwargs["hidden_states"] = kwargs["hidden_states"] * s
        return args, kwargs
    return hook


def tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer saved in `path`, left-padded for batched generation (a bounded cache:
    the last TOKENIZER_CACHE folders). Treat it as read-only: it is shared."""
    from kinmerge.io.safe_path import check_folder

    check_folder(path)  # transformers reads whatever tokenizer files the folder has
    try:
        return _tokenizer(str(Path(path).resolve()))
    except KinmergeError:
        raise
    except Exception as e:  # transformers' many ways of saying "no tokenizer here"
        why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise KinmergeError(f"no tokenizer could be loaded from {path} ({why})",
                            where=str(path), fix="task fitness needs the model's tokenizer "
                            "files (tokenizer.json, tokenizer_config.json) in its folder: "
                            "copy them from the base model") from None


@functools.lru_cache(maxsize=TOKENIZER_CACHE)
def _tokenizer(key: str) -> Any:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(key)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
