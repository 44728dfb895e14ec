"""Static checks of a recipe against the method registry: every problem at once.

These need no model files. Checks that need the models (layer ranges, tensor names, shapes)
happen in `plan`, still before any arithmetic.
"""
from __future__ import annotations

import difflib

from kinmerge.methods import REGISTRY, Method
from kinmerge.params import check_value
from kinmerge.recipe import DTYPES, Recipe


def recipe_problems(r: Recipe) -> list[str]:
    """Everything wrong with `r` that can be seen without opening a model."""
    if r.merge_method not in REGISTRY:
        close = difflib.get_close_matches(r.merge_method, REGISTRY, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return [f"unknown merge_method {r.merge_method!r}: {hint}"
                f"known methods are {', '.join(sorted(REGISTRY))}"]
    m = REGISTRY[r.merge_method]
    problems = _shape_problems(r, m)
    problems += _param_problems(r, m)
    for key in ("dtype", "out_dtype"):
        v = getattr(r, key)
        if v is not None and v not in DTYPES:
            problems.append(f"{key}: unknown dtype {v!r} (use one of {', '.join(DTYPES)})")
    ts = r.tokenizer_source
    if ts == "union":
        problems.append("tokenizer_source: 'union' is not supported yet; use 'base' or a model")
    elif ts not in (None, "base") and ts not in r.model_refs():
        problems.append(f"tokenizer_source {ts!r} is neither 'base' nor a model of the recipe")
    if ts == "base" and not r.base_model:
        problems.append("tokenizer_source: 'base' needs base_model")
    return problems


def inputs_of(r: Recipe, m: Method) -> list[str]:
    """Input model refs of a `models:` recipe.

    The base is not an input of a method that takes one (needs, or uses when given). A method
    that takes no base but any number of models (linear, karcher) takes a `base_model` missing
    from `models:` as its last input, as mergekit does, rather than silently ignoring it.
    """
    refs = [e.model for e in r.models or []]
    if _base_joins(r, m):
        refs = refs + [r.base_model]
    return [x for x in refs if not (m.takes_base and x == r.base_model)]


def _base_joins(r: Recipe, m: Method) -> bool:
    return (not m.takes_base and m.n_models is None and r.base_model is not None
            and r.models is not None and r.base_model not in [e.model for e in r.models])


def _shape_problems(r: Recipe, m: Method) -> list[str]:
    out = []
    if (r.models is None) == (r.slices is None):
        return ["give exactly one of `models` or `slices`"]
    if m.needs_base and not r.base_model:
        out.append(f"{m.name} needs base_model (the model the task vectors are taken from)")
    if r.models is not None:
        n = len(inputs_of(r, m))
        if m.name == "slerp" and (n != 1 or r.base_model not in [e.model for e in r.models]):
            out.append(f"slerp takes exactly 2 models, one of them the base_model; got "
                       f"{len(r.models)} model(s){'' if r.base_model else ' and no base_model'}")
        elif m.n_models is not None and n != m.n_models:
            out.append(f"{m.name} takes exactly {m.n_models} input model(s), got {n}")
        elif n < m.min_models:
            out.append(f"{m.name} needs at least {m.min_models} input model(s) besides the "
                       f"base, got {n}")
    for i, sl in enumerate(r.slices or []):
        lengths = set()
        for j, s in enumerate(sl.sources):
            a, b = s.layer_range
            if not 0 <= a < b:
                out.append(f"slices[{i}].sources[{j}].layer_range {[a, b]}: need 0 <= start < end")
            lengths.add(b - a)
        if len(lengths) > 1:
            out.append(f"slices[{i}]: all sources need layer ranges of one length, got "
                       f"{sorted(lengths)}")
        refs = [s.model for s in sl.sources]
        n = len([x for x in refs if not (m.takes_base and x == r.base_model)])
        if m.takes_base and r.base_model and r.base_model not in refs:
            out.append(f"slices[{i}] has no source from base_model {r.base_model!r}")
        if m.name == "slerp" and len(refs) != 2:
            out.append(f"slices[{i}]: slerp takes exactly 2 sources, got {len(refs)}")
        elif m.n_models is not None and n != m.n_models and m.name != "slerp":
            out.append(f"slices[{i}]: {m.name} takes exactly {m.n_models} source(s), got {n}")
        elif n < m.min_models:
            out.append(f"slices[{i}]: {m.name} needs at least {m.min_models} source(s) "
                       f"besides the base, got {n}")
    return out


def _levels(r: Recipe) -> list[tuple[str, dict, str | None]]:
    """(where, parameters, model or None for global levels) for every parameters block."""
    out = [("parameters", r.parameters, None)]
    out += [(f"models[{i}].parameters", e.parameters, e.model) for i, e in enumerate(r.models or [])]
    for i, sl in enumerate(r.slices or []):
        out.append((f"slices[{i}].parameters", sl.parameters, None))
        out += [(f"slices[{i}].sources[{j}].parameters", s.parameters, s.model)
                for j, s in enumerate(sl.sources)]
    return out


def _param_problems(r: Recipe, m: Method) -> list[str]:
    out = []
    known = [p.name for p in m.params]
    for where, params, model in _levels(r):
        for key, value in params.items():
            p = m.param(key)
            if p is None:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                out.append(f"{where}: unknown parameter {key!r} for {m.name} ({hint}"
                           f"{m.name} takes: {', '.join(known) or 'no parameters'})")
                continue
            if p.scope == "global" and model is not None:
                out.append(f"{where}: {key!r} is a global parameter of {m.name}; put it under "
                           "the top-level or the slice's `parameters`")
            why = check_value(value, boolean=p.kind is bool)
            if why:
                out.append(f"{where}.{key}: {why}")
    out += _missing_required(r, m)
    return out


def _missing_required(r: Recipe, m: Method) -> list[str]:
    out = []
    for p in m.params:
        if not p.required:
            continue
        if p.scope == "global":
            slices_ok = r.slices and all(p.name in sl.parameters for sl in r.slices)
            if p.name not in r.parameters and not slices_ok:
                out.append(f"missing required parameter {p.name!r} of {m.name} "
                           "(set it under the top-level `parameters`)")
            continue
        for where, model in _input_levels(r, m):
            if p.name not in model and p.name not in r.parameters:
                out.append(f"{where}: missing required parameter {p.name!r} of {m.name}")
    return out


def _input_levels(r: Recipe, m: Method) -> list[tuple[str, dict]]:
    """(where, merged model-level parameters) for every input model or slice source."""
    out = []
    for i, e in enumerate(r.models or []):
        if not (m.takes_base and e.model == r.base_model):
            out.append((f"models[{i}] ({e.model})", e.parameters))
    if _base_joins(r, m):
        out.append((f"base_model ({r.base_model}, an input of {m.name})", {}))
    for i, sl in enumerate(r.slices or []):
        for j, s in enumerate(sl.sources):
            if not (m.takes_base and s.model == r.base_model):
                out.append((f"slices[{i}].sources[{j}] ({s.model})", {**sl.parameters,
                                                                      **s.parameters}))
    return out
