"""The model a fitness scores: a merge held in memory, or a model folder on disk.

Evolution hands a fitness an in-memory merge (never written), breeding and greedy soup a
folder; both arrive as one `Candidate`, so a fitness function is written once:

    def my_fitness(candidate, split: str) -> float | dict[str, float]:
        candidate.model         # the torch causal LM (eval mode, on the run's device)
        candidate.tokenizer_dir # its tokenizer folder
        candidate.tensors       # its weights by name
        candidate.path          # its folder, or None for a merge in memory
        candidate.merged        # the MergedModel (recipe, plan), or None for a folder

Everything is built on first use and kept for the candidate's life only: a fitness that
reads the folder itself never pays for loading the module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from kinmerge.evaluate.build import apply_scales, build, tokenizer
from kinmerge.evaluate.model import LoadedModel, read_dir


@dataclass(eq=False)
class Candidate:
    """One model to score, with where and how wide its module is built."""

    tokenizer_dir: Path
    path: Path | None = None  # the model's folder (None: a merge in memory)
    merged: Any = None  # kinmerge.core.merge.MergedModel of an in-memory merge
    scales: list[float] | None = None  # DFS: hidden-state scale before each layer
    device: str = "cpu"
    dtype: torch.dtype | None = None  # None: the weights' own
    merge_seconds: float = 0.0  # merge_to_memory
    load_seconds: float = 0.0  # tensors -> module (0 until the module is built)
    extra: dict = field(default_factory=dict)
    _module: torch.nn.Module | None = field(default=None, repr=False)
    _weights: Any = field(default=None, repr=False)  # InMemoryModel read from `path`

    @classmethod
    def from_merge(cls, merged: Any, *, scales: Sequence[float] | None = None,
                   device: str = "cpu", dtype: torch.dtype | None = None,
                   merge_seconds: float = 0.0) -> "Candidate":
        return cls(merged.tokenizer_dir, None, merged,
                   list(scales) if scales is not None else None, str(device), dtype,
                   merge_seconds)

    @classmethod
    def from_dir(cls, path: str | Path, *, device: str = "cpu",
                 dtype: torch.dtype | None = None) -> "Candidate":
        return cls(Path(path), Path(path), device=str(device), dtype=dtype)

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        if self.merged is not None:
            return self.merged.tensors
        return self._read().tensors

    @property
    def config(self) -> dict:
        if self.merged is not None:
            return self.merged.config
        return self._read().config

    @property
    def model(self) -> torch.nn.Module:
        """The causal LM, built on first use (DFS scales applied) and reused after."""
        if self._module is None:
            t0 = time.perf_counter()
            module = build(self.tensors, self.config, self.device, self.dtype)
            if self.scales is not None:
                apply_scales(module, self.scales)
            self._module = module
            self.load_seconds += time.perf_counter() - t0
        return self._module

    def loaded(self) -> LoadedModel:
        """The module and its tokenizer, as built-in evaluators take them."""
        return LoadedModel(self.model, tokenizer(self.tokenizer_dir), self.device)

    def release(self) -> None:
        """Drop the module, the weights read from the folder and the merge held in memory
        (GPU memory with them): a released candidate holds no tensors, even where something
        still refers to it (a traceback kept by a library, e.g. optuna's stored ImportError,
        pins the frames that were live at a lazy import, and their locals with them)."""
        self._module, self._weights, self.merged = None, None, None

    def _read(self):
        if self._weights is None:
            if self.path is None:
                raise ValueError("a candidate needs a folder or a merge")
            self._weights = read_dir(self.path)
        return self._weights

    @classmethod
    def with_module(cls, module: torch.nn.Module, tokenizer_dir: str | Path, *,
                    path: str | Path | None = None, merged: Any = None,
                    device: str = "cpu", load_seconds: float = 0.0) -> "Candidate":
        """A candidate around a module built elsewhere (e.g. loaded by transformers)."""
        return cls(Path(tokenizer_dir), Path(path) if path else None, merged, device=device,
                   load_seconds=load_seconds, _module=module)
