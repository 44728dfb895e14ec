"""merge(recipe, out) = plan -> execute -> config, tokenizer, card; written atomically.
A file of several YAML documents runs as stages (`kinmerge.core.multistage`), each through
the one-recipe path in `kinmerge.core.write`.

>>> kinmerge.merge("examples/ties.yml", "runs/ties-merged")           # doctest: +SKIP
>>> merged = kinmerge.merge_to_memory(recipe)  # tensors + config, no disk I/O   # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

from kinmerge.core import multistage, stages
from kinmerge.core.peak import PeakEstimate, expected_peak
from kinmerge.core.plan import Plan
from kinmerge.core.write import (TOKENIZER_FILES, MergedModel, OnTensor, RecipeLike, _planned,
                                 check_device, check_seed, make_plan, merge_one, merge_to_memory,
                                 open_models, plan_peak, tokenizer_source)
from kinmerge.errors import KinmergeError

__all__ = ["TOKENIZER_FILES", "MergedModel", "OnTensor", "check_device", "make_plan",
           "make_plans", "merge", "merge_one", "merge_to_memory", "open_models", "plan_peak",
           "tokenizer_source"]


def make_plans(source: RecipeLike, *, stage: str | None = None, dtype: str | None = None,
               peak: bool = False) -> list[tuple[object, Plan, PeakEstimate | None]]:
    """(stage, Plan, peak) for every stage `source` runs, in run order: one (None, plan,
    peak) for a single recipe, each stage of a multi-stage file (see
    `kinmerge.core.stages`; no peak: its models are not written yet)."""
    if stages.is_multistage(source):
        return [(s, p, None) for s, p in stages.plan_stages(source, stage=stage, dtype=dtype)]
    _single_only(stage, None)
    with _planned(source, dtype=dtype) as (_, readers, p):
        return [(None, p, expected_peak(p, readers) if peak else None)]


def merge(recipe: RecipeLike, out: str | os.PathLike, *, seed: int | None = None,
          device: str = "cpu", dtype: str | None = None, work_dtype: str | None = None,
          out_shard_size: str | int = "5B", copy_tokenizer: bool = True,
          write_model_card: bool = True, overwrite: bool = False,
          progress: OnTensor | None = None, lineage: dict | None = None,
          allow_nonfinite: bool = False, ties_topk: str | None = None,
          threads: int | None = None, allow_norm_growth: bool = False,
          truncate_embeddings: bool = False, stage: str | None = None,
          intermediate_dir: str | os.PathLike | None = None) -> Path:
    """Merge `recipe` into the Hugging Face model directory `out`.

    Everything is written to a temporary directory beside `out` and renamed into place only
    when complete, so a failure leaves no partial output; OUT's lock
    (`kinmerge.io.rundir.run_lock`) is held throughout, so a second run on the same OUT fails
    naming this one. `dtype` overrides the recipe's
    working dtype; `work_dtype="float32"` computes in float32 whatever the recipe says.
    `lineage` adds fields to the model's lineage record (scores, generation, parent_kinship).
    `ties_topk="mergekit"` ranks equal magnitudes in TIES/breadcrumbs trims as stock
    mergekit does (its bytes reproduced); default: the recipe's `kinmerge: {topk: ...}`, else
    "stable" (earliest first, faster).
    An output tensor holding NaN/Inf fails the merge (NonFiniteError, naming the tensor and
    the input models holding NaN/Inf there) unless `allow_nonfinite`, which only warns.
    A merged tensor whose norm is over 10x its largest input's is named in a warning
    (absurd output norms) unless `allow_norm_growth`.
    `progress(plan, job)` is called after each output tensor (the CLI draws its bar with it).
    `threads`: torch threads for this call (default: kinmerge.threads' policy); torch's own
    setting is restored when the call returns. The merge's bytes do not depend on it.
    `truncate_embeddings` (mergekit's --unsafe-truncate-embeddings): with no tokenizer
    configured, embeddings whose vocabularies differ keep the rows every input has.
    A file of several YAML documents (or documents with `name:`, mergekit-multi's format)
    runs as stages through `kinmerge.core.multistage.merge_stages`, which takes `stage` and
    `intermediate_dir`.
    """
    options = dict(seed=seed, device=device, dtype=dtype, work_dtype=work_dtype,
                   out_shard_size=out_shard_size, copy_tokenizer=copy_tokenizer,
                   write_model_card=write_model_card, overwrite=overwrite, progress=progress,
                   lineage=lineage, allow_nonfinite=allow_nonfinite, ties_topk=ties_topk,
                   threads=threads, allow_norm_growth=allow_norm_growth,
                   truncate_embeddings=truncate_embeddings)
    check_seed(seed)  # before a stage opens a model or makes a folder
    if stages.is_multistage(recipe):
        return multistage.merge_stages(recipe, out, stage=stage,
                                       intermediate_dir=intermediate_dir, **options)
    _single_only(stage, intermediate_dir)
    return merge_one(recipe, out, **options)


def _single_only(stage, intermediate_dir) -> None:
    for value, flag in ((stage, "--stage"), (intermediate_dir, "--intermediate-dir")):
        if value is not None:
            raise KinmergeError(f"{flag} applies to a multi-stage recipe, but this recipe is "
                                "a single merge", where=flag,
                                fix=f"leave out {flag}, or give a recipe of several YAML "
                                    "documents whose stages have a `name:`")
