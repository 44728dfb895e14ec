"""Static checks of a recipe against the method registry: every problem at once.

These need no model files. Checks that need the models (layer ranges, tensor names, shapes)
happen in `plan`, still before any arithmetic.
"""
from __future__ import annotations

import difflib
import math

from kinmerge.methods import REGISTRY, Method
from kinmerge.methods.registry import MERGEKIT_PARAMETERS, Param
from kinmerge.core.params import check_value, numbers_in
from kinmerge.core.dtypes import DTYPES
from kinmerge.core.schema import Recipe
from kinmerge.errors import short_repr
from kinmerge.tokenizer import chat
from kinmerge.tokenizer.spec import problems as tokenizer_problems


def recipe_problems(r: Recipe) -> list[str]:
    """Everything wrong with `r` that can be seen without opening a model."""
    return check_recipe(r)[0]


def recipe_warnings(r: Recipe) -> list[str]:
    """What `r` asks that changes nothing or is unusual, though mergekit runs it."""
    return check_recipe(r)[1]


def check_recipe(r: Recipe) -> tuple[list[str], list[str]]:
    """(problems, warnings) of `r` that can be seen without opening a model."""
    if r.merge_method not in REGISTRY:
        close = difflib.get_close_matches(r.merge_method, REGISTRY, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return [f"unknown merge_method {short_repr(r.merge_method)}: {hint}"
                f"known methods are {', '.join(sorted(REGISTRY))}"], []
    m = REGISTRY[r.merge_method]
    if r.modules is not None:
        return [f"modules: ({', '.join(map(short_repr, list(r.modules)[:4]))}) is not supported: "
                "mergekit merges each module of a multi-module model (a vision-language "
                "model's text decoder, vision tower, projector) with its own layers, names and "
                "slices from its architecture files; kinmerge knows one stack of layers per "
                "model, and merging the modules as one would pair layers of different "
                "modules. Write the merge with models: or slices: (for a text-only model, the "
                "module's own models:/slices: are the same recipe)"], []
    problems = _shape_problems(r, m) + _duplicate_models(r)
    more, warnings = _param_problems(r, m)
    problems += more
    slice_problems, slice_warnings = _slice_keys(r)
    problems += slice_problems
    warnings += slice_warnings
    for key in ("dtype", "out_dtype"):
        v = getattr(r, key)
        if v is not None and v not in DTYPES:
            problems.append(f"{key}: unknown dtype {short_repr(v)} "
                            f"(use one of {', '.join(DTYPES)})")
    problems += tokenizer_problems(r.tokenizer, r.tokenizer_source, r.base_model,
                                   r.model_refs())
    if r.chat_template is not None:
        problems += [x for x in [chat.template_problem(r.chat_template)] if x]
    return problems, warnings


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
    for key in ("models", "slices"):
        if getattr(r, key) == []:
            return [f"`{key}` is empty: list at least one"]
    out += [f"slices[{i}].sources is empty: list at least one source"
            for i, sl in enumerate(r.slices or []) if not sl.sources]
    if out:
        return out
    if m.needs_base and not r.base_model:
        out.append(f"{m.name} needs base_model (the model the task vectors are taken from)")
    if r.models is not None:
        n = len(inputs_of(r, m))
        k = m.with_base
        if k is not None and (n != k - 1 or r.base_model not in [e.model for e in r.models]):
            out.append(f"{m.name} takes exactly {k} models, one of them the base_model; got "
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
        base = sl.base_model or r.base_model  # the slice's own base, else the recipe's
        n = len([x for x in refs if not (m.takes_base and x == base)])
        if m.takes_base and base and base not in refs:
            key = f"slices[{i}].base_model" if sl.base_model else "base_model"
            out.append(f"slices[{i}] has no source from {key} {base!r} (the base's tensors "
                       "are read from the slice's sources: add it as one)")
        if m.with_base is not None and len(refs) != m.with_base:
            out.append(f"slices[{i}]: {m.name} takes exactly {m.with_base} sources, "
                       f"got {len(refs)}")
        elif m.n_models is not None and n != m.n_models and m.with_base is None:
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


def _slice_keys(r: Recipe) -> tuple[list[str], list[str]]:
    """mergekit's per-slice `residual_weight` (a slice's own `base_model` is that slice's
    base: plan and the slice checks read it)."""
    problems, warnings = [], []
    for i, sl in enumerate(r.slices or []):
        if sl.residual_weight is not None:
            warnings.append(f"slices[{i}].residual_weight changes nothing (mergekit 0.1.5 "
                            "ignores it too)")
    return problems, warnings


def _duplicate_models(r: Recipe) -> list[str]:
    """A model listed twice: its parameters would be ambiguous, and mergekit refuses it."""
    groups = [("models", [e.model for e in r.models or []])]
    groups += [(f"slices[{i}].sources", [s.model for s in sl.sources])
                for i, sl in enumerate(r.slices or [])]
    out = []
    for where, refs in groups:
        seen: dict[str, int] = {}
        for j, ref in enumerate(refs):
            first = seen.setdefault(ref, j)
            if first != j:
                out.append(f"{where}[{j}]: model {short_repr(ref)} is listed twice (also {where}"
                           f"[{first}]); list each model once and give it the combined weight")
    return out


def _param_problems(r: Recipe, m: Method) -> tuple[list[str], list[str]]:
    out: list[str] = []
    cautions: list[str] = []
    ignored: dict[str, list[str]] = {}  # mergekit parameters this method does not use
    known = [p.name for p in m.params]
    for where, params, model in _levels(r):
        for key, value in params.items():
            p = m.param(key)
            if p is None and key in MERGEKIT_PARAMETERS:
                ignored.setdefault(key, []).append(where)
                continue
            if p is None:
                close = difflib.get_close_matches(key, known + sorted(MERGEKIT_PARAMETERS), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                out.append(f"{where}: unknown parameter {short_repr(key)} for {m.name} ({hint}"
                           f"{m.name} takes: {', '.join(known) or 'no parameters'})")
                continue
            if p.scope == "global" and model is not None:
                out.append(f"{where}: {key!r} is a global parameter of {m.name}; put it under "
                           "the top-level or the slice's `parameters`")
            why = check_value(value, boolean=p.kind is bool, integer=p.kind is int)
            if why:
                out.append(f"{where}.{key}: {why}")
            elif p.kind is not bool:
                _check_range(f"{where}.{key}", p, value, out, cautions)
    out += _missing_required(r, m)
    warnings = [_ignored_warning(m, ignored, known)] if ignored else []
    return out, warnings + cautions


def _check_range(where: str, p: Param, value, errors: list[str], warnings: list[str]) -> None:
    """Every number of `value` (gradient anchors and filter values one by one) outside the
    parameter's range: an error, or a warning for a `warn` range (NaN and inf: errors)."""
    for suffix, x in numbers_in(value):
        finite = math.isfinite(x)
        if finite and p.range.holds(x):
            continue
        want = ("a finite number" if p.range.low == -math.inf and p.range.high == math.inf
                else f"in {p.range}")
        if p.range.warn and finite:
            warnings.append(f"{where}{suffix}: {p.name} = {x!r} lies outside {p.range}; kept, "
                            "as mergekit runs it (it extrapolates): check it is meant")
        else:
            errors.append(f"{where}{suffix}: {p.name} must be {want}, got {x!r}")


def _ignored_warning(m: Method, ignored: dict[str, list[str]], known: list[str]) -> str:
    parts = []
    for key, wheres in ignored.items():
        close = difflib.get_close_matches(key, known, n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        parts.append(f"{key} (at {', '.join(wheres)}{hint})")
    return (f"{m.name} does not use these parameters of other mergekit methods; ignored, as "
            f"mergekit ignores them: {'; '.join(parts)}")


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
            if not (m.takes_base and s.model == (sl.base_model or r.base_model)):
                out.append((f"slices[{i}].sources[{j}] ({s.model})", {**sl.parameters,
                                                                      **s.parameters}))
    return out


def check_values(m: Method, tensor: str, params: dict, checked: dict) -> None:
    """Run the method's `check` and `caution` over the values one output tensor gets (its
    function's keyword arguments); collect (is an error, message) -> tensors in `checked`."""
    for is_error, check in ((True, m.check), (False, m.caution)):
        why = check(params) if check else None
        if why:
            checked.setdefault((is_error, why), []).append(tensor)


def checked_report(checked: dict) -> tuple[list[str], list[str]]:
    """(errors, warnings): one line per distinct message, naming the first tensors."""
    out: tuple[list[str], list[str]] = ([], [])
    for (is_error, why), tensors in checked.items():
        names = ", ".join(tensors[:3]) + (f" and {len(tensors) - 3} more"
                                          if len(tensors) > 3 else "")
        out[0 if is_error else 1].append(f"{why} (tensors: {names})")
    return out
