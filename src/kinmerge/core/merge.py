"""merge(recipe, out) = plan -> execute -> config, tokenizer, card; written atomically.

>>> kinmerge.merge("examples/ties.yml", "runs/ties-merged")           # doctest: +SKIP
>>> merged = kinmerge.merge_to_memory(recipe)  # tensors + config, no disk I/O   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from kinmerge import lineage as lin
from kinmerge.lineage.card import model_card
from kinmerge.errors import KinmergeError, OutputExistsError
from kinmerge.core.execute import execute
from kinmerge.io.atomic import atomic_dir
from kinmerge.io.lora import open_reader
from kinmerge.io.refs import split_lora
from kinmerge.io.outpath import check_out, check_replaceable, input_roots
from kinmerge.io.reader import ModelReader
from kinmerge.io.safe_path import inside, present, regular_file
from kinmerge.io.shards import parse_size
from kinmerge.io.writer import InMemorySink, ShardedWriter
from kinmerge.core.peak import PeakEstimate, expected_peak
from kinmerge.core.plan import Plan, TensorJob, plan
from kinmerge.core.recipe import Recipe, load_recipe
from kinmerge.threads import using
from kinmerge.tokenizer.write import write_appended

log = logging.getLogger(__name__)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                   "vocab.txt", "spiece.model", "chat_template.jinja", "chat_template.json")
RecipeLike = "str | os.PathLike | dict | Recipe"
OnTensor = Callable[[Plan, TensorJob], None]  # progress: called after each output tensor


@dataclass(frozen=True)
class MergedModel:
    """A merge held in memory: what evolution scores without writing to disk."""

    tensors: dict[str, torch.Tensor]
    config: dict
    plan: Plan

    @property
    def tokenizer_dir(self) -> Path:
        """The merge's tokenizer: the source model's folder, or, when the merge appends
        tokens (union, the tokenizer: block), a cached folder holding them too."""
        src = open_reader(tokenizer_source(self.plan)).path
        vp = self.plan.vocab
        return src if vp is None or not vp.out.appended else _appended_tokenizer(vp, src)


@contextlib.contextmanager
def open_models(recipe: Recipe, planned: dict | None = None) -> Iterator[dict[str, ModelReader]]:
    """Every model of `recipe`, opened lazily (headers only), closed on exit. `planned`:
    stand-ins for models not written yet (a multi-stage recipe's earlier stages)."""
    readers: dict[str, ModelReader] = {}
    try:
        for ref in recipe.model_refs():
            # `base+lora`: the adapter applied on the fly by the reader; a planned stage
            # stands in for itself with or without an adapter (names and shapes are its own)
            stand_in = (planned or {}).get(split_lora(ref)[0])
            readers[ref] = stand_in if stand_in is not None else open_reader(ref)
        yield readers
    finally:
        for r in readers.values():
            r.close()


def make_plan(recipe: RecipeLike, *, dtype: str | None = None,
              ties_topk: str | None = None, planned: dict | None = None) -> Plan:
    """Load, check and plan `recipe` without computing anything (a dry run)."""
    r = load_recipe(recipe)
    with open_models(r, planned) as readers:
        return plan(r, readers, dtype=dtype, topk=ties_topk)


def plan_peak(recipe: RecipeLike, *, dtype: str | None = None) -> tuple[Plan, PeakEstimate]:
    """The plan of `recipe` and the peak memory merging it is expected to take."""
    r = load_recipe(recipe)
    with open_models(r) as readers:
        p = plan(r, readers, dtype=dtype)
        return p, expected_peak(p, readers)


def merge_to_memory(recipe: RecipeLike, *, seed: int | None = None, device: str = "cpu",
                    dtype: str | None = None, work_dtype: str | None = None,
                    allow_nonfinite: bool = False,
                    ties_topk: str | None = None,
                    threads: int | None = None) -> MergedModel:
    """Merge into a dict of tensors (same plan/execute as `merge`, no disk writes).

    A result holding NaN/Inf raises NonFiniteError unless `allow_nonfinite`."""
    r = load_recipe(recipe)
    check_device(device)
    with open_models(r) as readers:
        p = plan(r, readers, dtype=dtype, work_dtype=work_dtype, topk=ties_topk)
        sink = InMemorySink()
        with using(p.method.work, threads, read_ahead=True):
            execute(p, readers, sink, seed=_seed(r, seed), device=device,
                    allow_nonfinite=allow_nonfinite)
    return MergedModel(sink.tensors, p.config, p)


def merge(recipe: RecipeLike, out: str | os.PathLike, *, seed: int | None = None,
          device: str = "cpu", dtype: str | None = None, work_dtype: str | None = None,
          out_shard_size: str | int = "5B", copy_tokenizer: bool = True,
          write_model_card: bool = True, overwrite: bool = False,
          progress: OnTensor | None = None, lineage: dict | None = None,
          allow_nonfinite: bool = False, ties_topk: str | None = None,
          threads: int | None = None) -> Path:
    """Merge `recipe` into the Hugging Face model directory `out`.

    Everything is written to a temporary directory beside `out` and renamed into place only
    when complete, so a failure leaves no partial output. `dtype` overrides the recipe's
    working dtype; `work_dtype="float32"` computes in float32 whatever the recipe says.
    `lineage` adds fields to the model's lineage record (scores, generation, parent_kinship).
    `ties_topk="mergekit"` ranks equal magnitudes in TIES/breadcrumbs trims as stock
    mergekit does (its bytes reproduced); default: the recipe's `kinmerge: {topk: ...}`, else
    "stable" (earliest first, faster).
    An output tensor holding NaN/Inf fails the merge (NonFiniteError, naming the tensor and
    the input models holding NaN/Inf there) unless `allow_nonfinite`, which only warns.
    `progress(plan, job)` is called after each output tensor (the CLI draws its bar with it).
    `threads`: torch threads for this call (default: kinmerge.threads' policy); torch's own
    setting is restored when the call returns.
    """
    out = Path(out)
    r = load_recipe(recipe)
    # a `base+lora` reference protects both folders
    check_out(out, input_roots([x for ref in r.model_refs() for x in split_lora(ref) if x]))
    if os.path.lexists(out) and not overwrite:
        raise OutputExistsError(f"output path {out} already exists", where=str(out),
                                fix="choose another path, or pass overwrite=True",
                                cli_fix="choose another path, or pass --overwrite")
    check_replaceable(out)
    max_shard = parse_size(out_shard_size)
    check_device(device)
    with open_models(r) as readers:
        p = plan(r, readers, dtype=dtype, work_dtype=work_dtype, topk=ties_topk)
        for w in p.warnings:
            log.warning(w)
        with atomic_dir(out) as tmp:
            writer = ShardedWriter(tmp, p.entries, max_shard)
            tick = (lambda job: progress(p, job)) if progress else None
            try:
                with using(p.method.work, threads, read_ahead=True):
                    execute(p, readers, writer, seed=_seed(r, seed), device=device,
                            on_tensor=tick, allow_nonfinite=allow_nonfinite)
                writer.close()
            finally:
                writer.abort()  # a failure must not keep a deleted shard's space (or mount)
            _write_side_files(tmp, p, readers, copy_tokenizer, write_model_card, out.name)
            parents = [lin.of_parent(ref, readers[ref].path) for ref in r.model_refs()]
            lin.write(tmp, lin.for_merge(out.name, str(out), p.recipe.to_yaml(), r.merge_method,
                                         _seed(r, seed), parents, **(lineage or {})))
    log.info("merged %d tensors into %s", len(p.jobs), out)
    return out


def check_device(device: str) -> None:
    """Fail early, clearly, when the requested device is not there."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise KinmergeError(f"not a device: {device!r}", where=f"device={device!r}",
                            cli_where=f"--device {device}", fix="use cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KinmergeError("CUDA was requested but torch sees no GPU", where=f"device={device!r}",
                            cli_where=f"--device {device}",
                            fix="run on a machine with a GPU and a CUDA build of torch, "
                                "or use device='cpu'",
                            cli_fix="run on a machine with a GPU and a CUDA build of torch, "
                                    "or use --device cpu")


def _seed(r: Recipe, seed: int | None) -> int:
    return seed if seed is not None else (r.seed if r.seed is not None else 0)


def tokenizer_source(p: Plan) -> str:
    if p.vocab is not None:
        return p.vocab.out.source
    ts = p.recipe.tokenizer_source
    if ts == "base":
        return p.recipe.base_model
    return ts or p.reference


def _write_side_files(tmp: Path, p: Plan, readers: dict[str, ModelReader],
                      copy_tokenizer: bool, card: bool, name: str) -> None:
    (tmp / "config.json").write_text(json.dumps(p.config, indent=2) + "\n")
    ref_dir = readers[p.reference].path
    _copy_side_file(ref_dir, "generation_config.json", tmp)
    if copy_tokenizer:
        tok_dir = readers[tokenizer_source(p)].path
        for f in TOKENIZER_FILES:
            _copy_side_file(tok_dir, f, tmp)
        if p.vocab is not None:  # tokens the union (or the tokenizer: block) adds
            write_appended(p.vocab, tok_dir, tmp)
    if p.recipe.chat_template:
        (tmp / "chat_template.jinja").write_text(p.recipe.chat_template)
    (tmp / "mergekit_config.yml").write_text(p.recipe.to_yaml())
    if card:
        (tmp / "README.md").write_text(model_card(p.recipe, name))


def _appended_tokenizer(vp, src: Path) -> Path:
    """A folder (under the temp dir, keyed by source and tokens) with `src`'s tokenizer files
    plus the plan's appended tokens; written once, atomically."""
    key = json.dumps([str(src.resolve()), [vars(a) for a in vp.out.appended]])
    d = Path(tempfile.gettempdir()) / "kinmerge-tokenizers" / hashlib.sha256(
        key.encode()).hexdigest()[:16]
    if not (d / "tokenizer.json").is_file():
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=d.parent))
        for f in TOKENIZER_FILES:
            _copy_side_file(src, f, tmp)
        write_appended(vp, src, tmp)
        try:
            tmp.rename(d)
        except OSError:  # another process wrote it first
            shutil.rmtree(tmp, ignore_errors=True)
    return d


def _copy_side_file(model_dir: Path, name: str, tmp: Path) -> None:
    """Copy `name` if the model has it; a link leading out of the model folder is refused
    (its target could be any local file, published with the merge)."""
    src = model_dir / name
    if not present(src):
        return
    inside(model_dir, name, what=name)
    regular_file(src, what=name)
    shutil.copyfile(src, tmp / name)  # the content; a link inside the folder is followed
