"""Turning what an evaluator is given into a ready `torch` causal LM and its tokenizer.

A model is a directory (local path or hub id), or weights in memory: an `InMemoryModel`, or
anything shaped like one — `kinmerge.merge_to_memory` returns a `MergedModel` with the same
`tensors`, `config` and `tokenizer_dir`. Both paths go through the same code (tensors into a
module skeleton with `load_state_dict(assign=True)`), so a merge scores the same in memory as
written to disk. Skeletons are cached by config: re-scoring new weights of the same shape, as
evolution does hundreds of times, costs no module construction.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import torch

from kinmerge.errors import ModelLoadError
from kinmerge.io.safe_path import check_folder

log = logging.getLogger(__name__)


@runtime_checkable
class WeightsLike(Protocol):
    """Weights in memory: a state dict, the model's config.json as a dict, a tokenizer dir."""

    tensors: dict[str, torch.Tensor]
    config: dict

    @property
    def tokenizer_dir(self) -> Path: ...


@dataclass(frozen=True)
class InMemoryModel:
    tensors: dict[str, torch.Tensor]
    config: dict
    tokenizer_dir: Path


@dataclass
class LoadedModel:
    """A module in eval mode on its device, with its tokenizer (what evaluators run)."""

    module: Any
    tokenizer: Any
    device: str = "cpu"


ModelLike = Union[str, os.PathLike, WeightsLike, LoadedModel]
_SKELETONS: dict[tuple[str, str], Any] = {}
_TOKENIZERS: dict[str, Any] = {}


def load_model(model: ModelLike, device: str = "cpu") -> LoadedModel:
    """A LoadedModel for a directory, in-memory weights, or an already loaded model."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        model = read_dir(model)
    if not isinstance(model, WeightsLike):
        raise TypeError(f"cannot evaluate a {type(model).__name__}: give a model directory, "
                        "an InMemoryModel, a MergedModel or a LoadedModel")
    module = _skeleton(model.config, device)
    tensors = dict(model.tensors)
    if model.config.get("tie_word_embeddings") and "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    dtype = next(iter(module.parameters())).dtype
    tensors = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
    module.load_state_dict(tensors, strict=True, assign=True)
    return LoadedModel(module, tokenizer(model.tokenizer_dir), device)


def read_dir(path: str | os.PathLike) -> InMemoryModel:
    """Every tensor of a model directory (safetensors shards or .bin), and its config."""
    from kinmerge.io.reader import ModelReader
    try:
        with ModelReader(path) as r:
            if not isinstance(r.config.get("model_type"), str):
                raise ModelLoadError(
                    "the model's config.json is missing or names no model_type, so the "
                    "architecture to evaluate is unknown", where=str(r.path),
                    fix="add the config.json the model was trained with")
            return InMemoryModel({n: r.get(n) for n in r.names()}, dict(r.config), r.path)
    except OSError as e:
        raise ModelLoadError(f"cannot read model {path}: {e}", where=str(path),
                             fix="give a directory with config.json and safetensors") from e


def tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer saved in `path` (cached), left-padded for batched generation."""
    key = str(Path(path).resolve())
    if key not in _TOKENIZERS:
        check_folder(path)  # transformers reads whatever tokenizer files the folder has
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(key)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        _TOKENIZERS[key] = tok
    return _TOKENIZERS[key]


def new_module(config: dict, dtype: torch.dtype) -> Any:
    """A freshly initialised causal LM of the architecture config.json describes."""
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version")}
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(config["model_type"], **cfg),
                                            dtype=dtype)


def _skeleton(config: dict, device: str) -> Any:
    """A module of this architecture, built once per (config, device) and reused."""
    key = (json.dumps(config, sort_keys=True, default=str), device)
    if key not in _SKELETONS:
        module = new_module(config, _dtype(config)).to(device).eval()
        _SKELETONS[key] = module
        log.debug("built a %s skeleton for %s", config["model_type"], device)
    return _SKELETONS[key]


def _dtype(config: dict) -> torch.dtype:
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return getattr(torch, str(name).removeprefix("torch."), torch.float32)
