"""One recipe, one model: load -> open -> plan -> execute, into memory (`merge_to_memory`)
or into a model folder written atomically with its config, tokenizer, card and lineage
(`merge_one`). `kinmerge.core.merge` puts the public `merge` (which also runs multi-stage
files) on top of it; `kinmerge.core.multistage` runs each stage through `merge_one`.
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
from typing import TYPE_CHECKING, Callable, Iterator

from kinmerge import lineage as lin
from kinmerge.lineage.card import model_card
from kinmerge.errors import KinmergeError, short_repr
from kinmerge.io.atomic import atomic_dir
from kinmerge.io.configfile import MAX_SEED
from kinmerge.io.lora import open_reader
from kinmerge.io.refs import split_lora
from kinmerge.io.outpath import check_out, check_replaceable, input_roots
from kinmerge.io.reader import ModelReader
from kinmerge.io.rundir import run_lock
from kinmerge.io.safe_path import inside, present, regular_file
from kinmerge.io.shards import parse_size
from kinmerge.io.writer import InMemorySink, ShardedWriter
from kinmerge.core.peak import PeakEstimate, expected_peak
from kinmerge.core.plan import Plan, TensorJob, plan
from kinmerge.core.recipe import Recipe, load_recipe
from kinmerge.threads import using
from kinmerge.tokenizer import chat
from kinmerge.tokenizer.write import write_appended

if TYPE_CHECKING:  # planning (validate, plan) runs without torch; executing imports it
    import torch

    from kinmerge.io.cache import TensorCache

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


@dataclass(frozen=True)
class Staged:
    """A stage of a multi-stage recipe, as `kinmerge.core.multistage` runs it: its recipe
    names the earlier stages it uses, `folders` maps each name to where that stage was
    written; `text` is the recipe that makes it on its own (`stages.stage_text`: written as
    mergekit_config.yml and in the card); `ref` is what its lineage records as its place
    (its name while it lives in a temporary folder); `inputs`: the models the stages read."""

    folders: dict[str, str]
    text: str
    ref: str
    inputs: tuple[str, ...]


@contextlib.contextmanager
def open_models(recipe: Recipe, planned: dict | None = None,
                folders: dict[str, str] | None = None) -> Iterator[dict[str, ModelReader]]:
    """Every model of `recipe`, opened lazily (headers only), closed on exit. A multi-stage
    recipe's earlier stages are named in it: `planned` maps a name to a stand-in (a stage
    not written yet), `folders` to the folder it was written to."""
    readers: dict[str, ModelReader] = {}
    try:
        for ref in recipe.model_refs():
            # `base+lora`: the adapter applied on the fly by the reader; a planned stage
            # stands in for itself with or without an adapter (names and shapes are its own)
            stand_in = (planned or {}).get(split_lora(ref)[0])
            readers[ref] = (stand_in if stand_in is not None
                            else open_reader(_in_folder(ref, folders or {})))
        yield readers
    finally:
        for r in readers.values():
            r.close()


@contextlib.contextmanager
def _planned(recipe: RecipeLike, *, planned: dict | None = None,
             folders: dict[str, str] | None = None, cache: "TensorCache | None" = None,
             **plan_options) -> Iterator[tuple[Recipe, dict[str, ModelReader], Plan]]:
    """The one entry path of every merge: load -> open -> plan (models closed on exit);
    with a `cache`, the readers take source tensors from it and keep them there."""
    r = load_recipe(recipe)
    with open_models(r, planned, folders) as readers:
        if cache is not None:
            readers = cache.open(readers)
        yield r, readers, plan(r, readers, **plan_options)


def make_plan(recipe: RecipeLike, *, dtype: str | None = None,
              ties_topk: str | None = None, planned: dict | None = None) -> Plan:
    """Load, check and plan `recipe` without computing anything (a dry run)."""
    with _planned(recipe, planned=planned, dtype=dtype, topk=ties_topk) as (_, _, p):
        return p


def plan_peak(recipe: RecipeLike, *, dtype: str | None = None) -> tuple[Plan, PeakEstimate]:
    """The plan of `recipe` and the peak memory merging it is expected to take."""
    with _planned(recipe, dtype=dtype) as (_, readers, p):
        return p, expected_peak(p, readers)


def merge_to_memory(recipe: RecipeLike, *, seed: int | None = None, device: str = "cpu",
                    dtype: str | None = None, work_dtype: str | None = None,
                    allow_nonfinite: bool = False, allow_norm_growth: bool = False,
                    ties_topk: str | None = None,
                    threads: int | None = None, cache: "TensorCache | None" = None,
                    truncate_embeddings: bool = False) -> MergedModel:
    """Merge into a dict of tensors (same plan/execute as `merge`, no disk writes).

    A result holding NaN/Inf raises NonFiniteError unless `allow_nonfinite`.
    `cache` (kinmerge.io.cache.TensorCache): source tensors are taken from it and kept in it
    for the next merge (same bytes as without; an evolution worker keeps one)."""
    from kinmerge.core.execute import execute  # torch: tensors are computed

    check_device(device)
    check_seed(seed)
    with _planned(recipe, cache=cache, dtype=dtype, work_dtype=work_dtype, topk=ties_topk,
                  truncate_embeddings=truncate_embeddings) as (r, readers, p):
        sink = InMemorySink()
        with using(p.method.work, threads):
            execute(p, readers, sink, seed=_seed(r, seed), device=device,
                    allow_nonfinite=allow_nonfinite, allow_norm_growth=allow_norm_growth)
    return MergedModel(sink.tensors, p.config, p)


def merge_one(recipe: RecipeLike, out: str | os.PathLike, *, seed: int | None = None,
              device: str = "cpu", dtype: str | None = None, work_dtype: str | None = None,
              out_shard_size: str | int = "5B", copy_tokenizer: bool = True,
              write_model_card: bool = True, overwrite: bool = False,
              progress: OnTensor | None = None, lineage: dict | None = None,
              allow_nonfinite: bool = False, ties_topk: str | None = None,
              threads: int | None = None, allow_norm_growth: bool = False,
              truncate_embeddings: bool = False, staged: Staged | None = None) -> Path:
    """`kinmerge.merge` of one recipe (a stage of a multi-stage file included: `staged`):
    see `kinmerge.core.merge.merge` for the keywords."""
    from kinmerge.core.execute import execute  # torch: tensors are computed

    out = Path(out)
    check_seed(seed)
    r = load_recipe(recipe)
    folders = staged.folders if staged else {}
    # a `base+lora` reference protects both folders (a stage's: the folder it was written to)
    check_out(out, input_roots([x for ref in r.model_refs()
                                for x in split_lora(_in_folder(ref, folders)) if x]))
    max_shard = parse_size(out_shard_size)
    check_device(device)
    with run_lock(out, "merge"):
        check_replaceable(out, overwrite)
        with _planned(r, folders=folders, dtype=dtype, work_dtype=work_dtype, topk=ties_topk,
                      truncate_embeddings=truncate_embeddings) as (_, readers, p):
            for w in p.warnings:
                log.warning(w)
            with atomic_dir(out, overwrite=overwrite, command="merge") as tmp:
                writer = ShardedWriter(tmp, p.entries, max_shard)
                tick = (lambda job: progress(p, job)) if progress else None
                try:
                    with using(p.method.work, threads):
                        execute(p, readers, writer, seed=_seed(r, seed), device=device,
                                on_tensor=tick, allow_nonfinite=allow_nonfinite,
                                allow_norm_growth=allow_norm_growth)
                    writer.close()
                finally:
                    writer.abort()  # a failure must not keep a deleted shard's space (or mount)
                write_side_files(tmp, p, readers, copy_tokenizer=copy_tokenizer,
                                 card=write_model_card, name=out.name, staged=staged)
                parents = [lin.of_parent(ref, readers[ref].path) for ref in r.model_refs()]
                lin.write(tmp, lin.for_merge(out.name, staged.ref if staged else str(out),
                                             p.recipe.to_yaml(), r.merge_method,
                                             _seed(r, seed), parents, **(lineage or {})))
    log.info("merged %d tensors into %s", len(p.jobs), out)
    return out


def check_device(device: str) -> None:
    """Fail early, clearly, when the requested device is not there."""
    import torch

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


def check_seed(seed: int | None) -> None:
    """A merge's `seed=` is None or a whole number from 0 to 2**32-1 (as a recipe's `seed`);
    checked before any model is opened."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed <= MAX_SEED):
        raise KinmergeError(f"seed must be a whole number from 0 to {MAX_SEED}, not "
                            f"{short_repr(seed)}", where="seed", cli_where="--seed",
                            fix="pass a seed in that range")


def _seed(r: Recipe, seed: int | None) -> int:
    """The merge's seed: the caller's, else the recipe's, else 0."""
    return seed if seed is not None else (r.seed if r.seed is not None else 0)


def tokenizer_source(p: Plan) -> str:
    if p.vocab is not None:
        return p.vocab.out.source
    ts = p.recipe.tokenizer_source
    if ts == "base":
        return p.recipe.base_model
    return ts or p.reference


def _in_folder(ref: str, folders: dict[str, str]) -> str:
    """`ref`, a stage's name in it replaced by the folder that stage was written to."""
    name, lora = split_lora(ref)
    return ref if name not in folders else str(folders[name]) + (f"+{lora}" if lora else "")


def write_side_files(tmp: Path, p: Plan, readers: dict[str, ModelReader], *,
                     copy_tokenizer: bool = True, card: bool = False, name: str = "",
                     staged: Staged | None = None) -> None:
    """Everything a merge writes beside its tensors: config.json, generation_config.json,
    the tokenizer (with the tokens the plan's vocabulary adds), the chat template,
    mergekit_config.yml and the card. A multi-stage plan writes an earlier stage's files
    with it (`kinmerge.core.stages.plan_stages`), so a later stage plans against them."""
    (tmp / "config.json").write_text(json.dumps(p.config, indent=2) + "\n")
    ref_dir = readers[p.reference].path
    _copy_side_file(ref_dir, "generation_config.json", tmp)
    if copy_tokenizer:
        tok_dir = readers[tokenizer_source(p)].path
        for f in TOKENIZER_FILES:
            _copy_side_file(tok_dir, f, tmp)
        if p.vocab is not None:  # tokens the union (or the tokenizer: block) adds
            write_appended(p.vocab, tok_dir, tmp)
    # a format's name expands to its template, `auto` to the inputs' most common one; the
    # file wins over a chat_template key in the copied tokenizer_config.json when loaded
    template = chat.resolve(p.recipe.chat_template,
                            [readers[ref].path for ref in p.recipe.model_refs()])
    if template:
        (tmp / "chat_template.jinja").write_text(template, encoding="utf-8")
    (tmp / "mergekit_config.yml").write_text(staged.text if staged else p.recipe.to_yaml())
    if card:
        (tmp / "README.md").write_text(
            model_card(p.recipe, name, text=staged.text, inputs=list(staged.inputs),
                       stages=sorted(staged.folders)) if staged else model_card(p.recipe, name))


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
