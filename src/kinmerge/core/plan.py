"""Recipe + opened models -> Plan: one TensorJob per output tensor, every check done.

Nothing here reads tensor data: only names, shapes and dtypes from the file headers. After
`plan` returns, the merge can only fail on I/O, never on a bad recipe.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from kinmerge.errors import PlanError
from kinmerge.io.dtype import Dtype
from kinmerge.io.reader import ModelReader
from kinmerge.core.layers import LayerScheme, detect, layer_count_problem
from kinmerge.methods import Method, get_method
from kinmerge.core.params import value_at
from kinmerge.core.dtypes import dtype_named
from kinmerge.core.schema import Recipe
from kinmerge.tokenizer.build import VocabPlan, vocab_plan
from kinmerge.tokenizer.rows import VocabRows, plan_rows
from kinmerge.tokenizer.vocab import is_vocab_tensor
from kinmerge.core.units import Unit, model_units, out_layers, slice_units
from kinmerge.core.validate import check_values, checked_report, recipe_warnings

MAX_SHOWN = 25


@dataclass(frozen=True)
class TensorJob:
    """How to compute one output tensor."""

    name: str
    sources: tuple[tuple[str, str], ...]  # (model, tensor name) per input, recipe order
    base: tuple[str, str] | None
    params: dict[str, Any]  # keyword -> list (per model) or scalar (global)
    shape: tuple[int, ...]
    out_dtype: Dtype
    work_dtype: Dtype  # inputs are cast to it and the result rounded to it
    layer: int | None = None  # output layer index
    vocab: VocabRows | None = None  # inputs' rows laid out in the output vocabulary
    accum_dtype: Dtype | None = None  # the method accumulates in it (registry-declared)


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    method: Method
    jobs: tuple[TensorJob, ...]
    compute_dtype: Dtype | None  # None: each tensor's own dtype
    reference: str  # the model whose config (and by default tokenizer) the output takes
    config: dict
    warnings: tuple[str, ...] = ()
    vocab: VocabPlan | None = None  # the output vocabulary (tokenizer_source / tokenizer:)

    @property
    def entries(self) -> list[tuple[str, Dtype, tuple[int, ...]]]:
        return [(j.name, j.out_dtype, j.shape) for j in self.jobs]


@dataclass
class _Ctx:
    recipe: Recipe
    method: Method
    readers: dict[str, ModelReader]
    scheme: LayerScheme
    vocab: VocabPlan | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    # (is an error, message) of the method's check/caution -> output tensors it holds for
    checked: dict[tuple[bool, str], list[str]] = field(default_factory=dict)
    truncate: bool = False  # --unsafe-truncate-embeddings
    truncated_rows: int | None = None  # the vocabulary rows truncation kept


def plan(recipe: Recipe, readers: dict[str, ModelReader], *,
         dtype: str | None = None, work_dtype: str | None = None,
         topk: str | None = None, truncate_embeddings: bool = False) -> Plan:
    """Check `recipe` against its models and list what to compute; raises PlanError.

    Each job's dtypes are settled here: the working dtype is `work_dtype`, else `dtype` /
    the recipe's `dtype` (mergekit's behaviour), else the dtype of the job's base tensor (its
    first input without a base); the output dtype is the recipe's `out_dtype`, else `dtype`,
    else the reference tensor's; methods declaring wider accumulation get it per job.
    topk: how TIES/breadcrumbs rank equal magnitudes ("stable" or "mergekit"); default the
    recipe's `kinmerge: {topk: ...}`, else "stable".
    truncate_embeddings (mergekit's --unsafe-truncate-embeddings): where the recipe configures
    no tokenizer, embeddings and output heads whose vocabularies differ keep the rows all
    inputs have (the first min(rows)) instead of being refused; this assumes the shared token
    ids mean the same tokens in every model, which nothing checks. config.json's vocab_size
    follows.
    """
    m = get_method(recipe.merge_method)
    refs = recipe.model_refs()
    reference = refs[0]
    ref_reader = readers[reference]
    ctx = _Ctx(recipe, m, readers, detect(ref_reader.names(), ref_reader.config),
               warnings=recipe_warnings(recipe),
               options={"topk": topk or (recipe.kinmerge.topk if recipe.kinmerge else "stable")},
               truncate=truncate_embeddings)
    _check_architectures(ctx, refs)
    ctx.vocab = vocab_plan(recipe, readers)
    units = (model_units(recipe, m, readers, ctx.scheme) if recipe.models is not None
             else slice_units(recipe, m, readers, ctx.scheme, ctx.problems))
    compute = dtype_named(work_dtype) or dtype_named(dtype or recipe.dtype)
    out_dtype = dtype_named(recipe.out_dtype) or dtype_named(dtype or recipe.dtype)
    jobs = [j for j in (_job(ctx, u, out_dtype, compute) for u in units) if j is not None]
    errors, warnings = checked_report(ctx.checked)
    ctx.problems += errors
    ctx.warnings += warnings
    if ctx.problems:
        shown = ctx.problems[:MAX_SHOWN]
        if len(ctx.problems) > MAX_SHOWN:
            shown.append(f"... and {len(ctx.problems) - MAX_SHOWN} more")
        raise PlanError(shown, where=f"recipe {recipe.merge_method} over {', '.join(refs)}",
                        fix="make the recipe fit the models (`kinmerge plan` shows the mapping)")
    jobs.sort(key=lambda j: (readers[j.sources[0][0]].shard(j.sources[0][1]), j.name))
    config = _out_config(ctx, reference, out_layers(recipe), jobs)
    return Plan(recipe, m, tuple(jobs), compute, reference, config, tuple(ctx.warnings),
                ctx.vocab)


def _check_architectures(ctx: _Ctx, refs: list[str]) -> None:
    if not ctx.readers[refs[0]].config:
        ctx.problems.append(
            f"model {refs[0]} has no config.json, and the merged model takes its config from "
            "it (the base_model, else the first model listed): add the model's config.json "
            "to its folder")
    for ref in dict.fromkeys(refs):
        why = layer_count_problem(ctx.readers[ref].names(), ctx.readers[ref].config)
        if why:
            ctx.problems.append(f"model {ref}: {why}; fix its config.json or re-download it")
    for ref in refs[1:]:
        r = ctx.readers[ref]
        other = detect(r.names(), r.config)
        if other.prefix != ctx.scheme.prefix:
            ctx.problems.append(
                f"model {ref} has a different architecture: its layers are named "
                f"{other.prefix}N, those of {refs[0]} {ctx.scheme.prefix}N")


def _job(ctx: _Ctx, u: Unit, out_dtype: Dtype | None,
         compute: Dtype | None) -> TensorJob | None:
    shape = _check_tensors(ctx, u)
    params = _resolve_params(ctx, u)
    if shape is None or params is None:
        return None
    ref_model, ref_name = u.ref
    dt = ctx.readers[ref_model].dtype(ref_name)
    if dt.is_floating_point:  # integer and bool buffers (position ids, masks) keep theirs
        dt = out_dtype or dt
    vocab = None
    if ctx.vocab is not None and is_vocab_tensor(u.name):  # rows follow the output vocabulary
        inputs = [(m, n) for m, n, _ in u.sources] + ([u.base] if u.base else [])
        vocab, problems = plan_rows(ctx.vocab, [m for m, _ in inputs], u.name,
                                    [ctx.readers[m].shape(n)[0] for m, n in inputs])
        ctx.problems += problems
        shape = (ctx.vocab.out.rows, *shape[1:])
    elif ctx.truncate and is_vocab_tensor(u.name):
        vocab, shape = _truncated(ctx, u, shape)
    first = u.base or (u.sources[0][0], u.sources[0][1])
    work = compute or ctx.readers[first[0]].dtype(first[1])
    return TensorJob(u.name, tuple((m, n) for m, n, _ in u.sources), u.base, params, shape, dt,
                     work, u.layer, vocab, ctx.method.accumulation(work))


def _truncated(ctx: _Ctx, u: Unit, shape: tuple[int, ...]
               ) -> tuple[VocabRows | None, tuple[int, ...]]:
    """--unsafe-truncate-embeddings: every input's first min(rows) rows, as they are."""
    inputs = [(m, n) for m, n, _ in u.sources] + ([u.base] if u.base else [])
    rows = [ctx.readers[m].shape(n)[0] for m, n in inputs]
    keep = min(rows)
    if all(r == keep for r in rows):
        return None, shape
    ctx.warnings.append(f"{u.name}: rows {', '.join(map(str, sorted(set(rows))))} truncated to "
                        f"the {keep} all inputs have (--unsafe-truncate-embeddings: token ids "
                        "below it must mean the same tokens in every model)")
    ctx.truncated_rows = keep
    take = array("q", range(keep))
    return VocabRows(keep, keep, (take,) * len(inputs), (), (), (), ()), (keep, *shape[1:])


def _check_tensors(ctx: _Ctx, u: Unit) -> tuple[int, ...] | None:
    """Every input has the tensor, with the reference's shape (or a vocab-size difference
    that tokenizer_source explicitly resolves)."""
    ref_model, ref_name = u.ref
    want = ctx.readers[ref_model].shape(ref_name)
    ok = True
    for model, name in [(m, n) for m, n, _ in u.sources] + ([u.base] if u.base else []):
        r = ctx.readers[model]
        if name not in r:
            ctx.problems.append(f"tensor {name} is missing in model {model} "
                                f"(needed for output {u.name})")
            ok = False
            continue
        got = r.shape(name)
        if got == want:
            continue
        vocab_like = is_vocab_tensor(name)
        if vocab_like and got[1:] == want[1:] and ctx.vocab is None and ctx.truncate:
            continue  # the shared prefix of rows is kept (_job)
        if vocab_like and got[1:] == want[1:] and ctx.vocab is not None:
            if ctx.vocab.by_index:
                ctx.warnings.append(f"{name}: model {model} has {got[0]} rows, the base "
                                    f"{want[0]}; rows aligned to the base vocabulary by index "
                                    "(tokenizer_source: base, no tokenizer files)")
            continue
        hint = (" — the vocabularies differ; set `tokenizer_source: base` to keep the base's"
                " tokens or `tokenizer_source: union` for every model's"
                if vocab_like and got[1:] == want[1:] else "")
        ctx.problems.append(f"shape mismatch for {name}: {list(got)} in {model}, "
                            f"{list(want)} in {ref_model}{hint}")
        ok = False
    return want if ok else None


def _resolve_params(ctx: _Ctx, u: Unit) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    ok = True
    for p in ctx.method.params:
        if not p.effect:
            continue
        chains = [c for _, _, c in u.sources] if p.scope == "model" else [u.global_chain]
        values = []
        for chain in chains:
            # the first level whose value applies wins: a filter list that matches nothing
            # defers to the next level (slice source, slice, model, global), as in mergekit
            v = next((x for lvl in chain if p.name in lvl
                      for x in [value_at(lvl[p.name], u.name, u.u)] if x is not None), None)
            if v is None and p.required:
                ok = False
                ctx.problems.append(f"no value of {p.name!r} applies to tensor {u.name} "
                                    "(a filter list without a catch-all entry?)")
            v = p.default if v is None else v
            values.append(bool(v) if p.kind is bool else int(v) if p.kind is int else v)
        out[p.arg] = values if p.scope == "model" else values[0]
    if ok:  # a gradient or filter can make the values, hence the verdict, differ per tensor
        check_values(ctx.method, u.name, out, ctx.checked)
    out.update({k: ctx.options[k] for k in ctx.method.options})
    return out if ok else None


def _out_config(ctx: _Ctx, reference: str, n_layers: int | None,
                jobs: list[TensorJob]) -> dict:
    config = dict(ctx.readers[reference].config)
    if ctx.vocab is not None and "vocab_size" in config:
        config["vocab_size"] = ctx.vocab.out.rows
    if ctx.truncated_rows is not None and "vocab_size" in config:
        config["vocab_size"] = ctx.truncated_rows
    dtypes = {j.out_dtype for j in jobs if j.out_dtype.is_floating_point}  # not the buffers
    if len(dtypes) == 1:
        name = next(iter(dtypes)).name
        config["torch_dtype"] = name
        if "dtype" in config:
            config["dtype"] = name
    if n_layers and ctx.scheme.config_key:
        old = config.get(ctx.scheme.config_key)
        config[ctx.scheme.config_key] = n_layers
        path = [s.sources[0].layer_range[0] + j for s in ctx.recipe.slices
                for j in range(s.sources[0].layer_range[1] - s.sources[0].layer_range[0])]
        for k, v in list(config.items()):  # per-layer lists (e.g. layer_types) follow the path
            if isinstance(v, list) and len(v) == old and k != "architectures":
                config[k] = [v[i] for i in path]
    return config
