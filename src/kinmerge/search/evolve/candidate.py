"""One candidate, merged in memory and scored as a `kinmerge.evaluate.Candidate`.

Every candidate, PS or DFS, is a recipe merged by `kinmerge.merge_to_memory` (the same
plan/execute core as `kinmerge merge`), so the model scored is the model `best.yml` rebuilds.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch

from kinmerge.evaluate.build import build
from kinmerge.evaluate.candidate import Candidate
from kinmerge.core.merge import MergedModel, merge_to_memory
from kinmerge.core.recipe import Recipe

__all__ = ["Candidate", "build_candidate", "causal_lm", "load_candidate"]


def build_candidate(recipe: Recipe, *, seed: int | None = None,
                    scales: Sequence[float] | None = None, device: str = "cpu",
                    dtype: torch.dtype | None = None, cache=None,
                    threads: int | None = None) -> Candidate:
    """Merge `recipe` into memory on `device` (timed); the module is built on first use.
    cache: a kinmerge.io.cache.TensorCache the sources are read through (and kept in);
    threads: torch threads of the merge (None: kinmerge.threads' policy)."""
    t0 = time.perf_counter()
    # a NaN candidate scores NaN and its trial fails; it must not abort the whole search
    merged = merge_to_memory(recipe, seed=seed, device=device, allow_nonfinite=True,
                             cache=cache, threads=threads)
    return Candidate.from_merge(merged, scales=scales, device=device, dtype=dtype,
                                merge_seconds=time.perf_counter() - t0)


def causal_lm(config: dict, tensors: dict[str, torch.Tensor], *,
              device: str = "cpu") -> torch.nn.Module:
    """A transformers causal LM whose parameters are `tensors` (kinmerge.evaluate.build)."""
    return build(tensors, config, device)


def load_candidate(model_dir: str | Path, device: str = "cpu") -> Candidate:
    """A saved model (e.g. best-model/) as a candidate, DFS scales applied: checks an export.

    Its tensors come from disk through transformers, not through the merge core, so scoring
    it against the in-memory winner tests that the export is the evaluated model.
    """
    from kinmerge.search.evolve.dfs import load_dfs_model
    from kinmerge.io.reader import ModelReader

    t0 = time.perf_counter()
    model = load_dfs_model(model_dir).to(device)
    with ModelReader(model_dir) as reader:
        config = dict(reader.config)
    merged = MergedModel({n: p.detach() for n, p in model.state_dict().items()},
                         config, None)  # type: ignore[arg-type]
    return Candidate.with_module(model, model_dir, path=model_dir, merged=merged,
                                 device=device, load_seconds=time.perf_counter() - t0)
