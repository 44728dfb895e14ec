"""One candidate, merged in memory and turned into a runnable causal LM.

Every candidate, PS or DFS, is a recipe merged by `kinmerge.merge_to_memory` (the same
plan/execute core as `kinmerge merge`), so the model scored is the model `best.yml` rebuilds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from kinmerge.merge import MergedModel, merge_to_memory
from kinmerge.recipe import Recipe


@dataclass
class Candidate:
    """What a fitness function sees: the model (eval mode), its tokenizer folder, the merge."""

    model: torch.nn.Module
    tokenizer_dir: Path
    merged: MergedModel
    merge_seconds: float = 0.0  # merge_to_memory
    load_seconds: float = 0.0  # tensors -> transformers model
    scales: list[float] | None = None  # DFS: hidden-state scale before each layer
    extra: dict = field(default_factory=dict)


def build_candidate(recipe: Recipe, *, seed: int | None = None,
                    scales: Sequence[float] | None = None, device: str = "cpu") -> Candidate:
    """Merge `recipe` into memory and load it into a transformers model (timed)."""
    t0 = time.perf_counter()
    # a NaN candidate scores NaN and its trial fails; it must not abort the whole search
    merged = merge_to_memory(recipe, seed=seed, allow_nonfinite=True)
    t1 = time.perf_counter()
    model = causal_lm(merged.config, merged.tensors, device=device)
    if scales is not None:
        from kinmerge.evolve.dfs import apply_scales

        apply_scales(model, scales)
    return Candidate(model, merged.tokenizer_dir, merged, t1 - t0, time.perf_counter() - t1,
                     list(scales) if scales is not None else None)


def causal_lm(config: dict, tensors: dict[str, torch.Tensor], *,
              device: str = "cpu") -> torch.nn.Module:
    """A transformers causal LM whose parameters *are* `tensors` (assigned, not copied).

    A fresh module each time, not evaluate's cached skeleton: DFS hooks on one candidate
    must not follow the next.
    """
    from kinmerge.evaluate.model import new_module

    dtype = next(iter(tensors.values())).dtype if tensors else torch.float32
    model = new_module(config, dtype)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if unexpected:
        raise ValueError(f"merged tensors the model does not have: {unexpected[:5]}")
    if model.config.tie_word_embeddings:
        model.tie_weights()
        missing = [m for m in missing if m != "lm_head.weight"]
    if missing:
        raise ValueError(f"merged model lacks tensors: {missing[:5]}")
    return model.to(device).eval()


def load_candidate(model_dir: str | Path) -> Candidate:
    """A saved model (e.g. best-model/) as a candidate, DFS scales applied: checks an export.

    Its tensors come from disk through transformers, not through the merge core, so scoring
    it against the in-memory winner tests that the export is the evaluated model.
    """
    from kinmerge.evolve.dfs import load_dfs_model
    from kinmerge.io.reader import ModelReader

    t0 = time.perf_counter()
    model = load_dfs_model(model_dir)
    reader = ModelReader(model_dir)
    merged = MergedModel({n: p.detach() for n, p in model.state_dict().items()},
                         reader.config, None)  # type: ignore[arg-type]
    reader.close()
    cand = Candidate(model, Path(model_dir), merged, 0.0, time.perf_counter() - t0)
    return cand
