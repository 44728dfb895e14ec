"""Turning what an evaluator is given into a ready `torch` causal LM and its tokenizer.

A model is a directory (local path or hub id), or weights in memory: an `InMemoryModel`, or
anything shaped like one — `kinmerge.merge_to_memory` returns a `MergedModel` with the same
`tensors`, `config` and `tokenizer_dir`. Both paths go through `kinmerge.evaluate.build`
(tensors assigned into a fresh module), so a merge scores the same in memory as written to
disk. Each load builds a module the caller owns; to score one model with several evaluators,
load it once (`evaluate_model` does) and hand them the `LoadedModel`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import torch

from kinmerge.errors import ModelLoadError
from kinmerge.evaluate.build import build, new_module, tokenizer  # noqa: F401 (re-exported)

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


def load_model(model: ModelLike, device: str = "cpu",
               dtype: torch.dtype | None = None) -> LoadedModel:
    """A LoadedModel for a directory, in-memory weights, or an already loaded model (which
    is returned as it is, on its own device). dtype None: the weights' own."""
    if isinstance(model, LoadedModel):
        return model
    loaded = getattr(model, "loaded", None)  # a fitness Candidate: its own module
    if callable(loaded):
        return loaded()
    if isinstance(model, (str, os.PathLike)):
        model = read_dir(model)
    if not isinstance(model, WeightsLike):
        raise TypeError(f"cannot evaluate a {type(model).__name__}: give a model directory, "
                        "an InMemoryModel, a MergedModel or a LoadedModel")
    module = build(model.tensors, model.config, device, dtype)
    return LoadedModel(module, tokenizer(model.tokenizer_dir), str(device))


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
