"""The value of a recipe parameter at one tensor and layer position.

A value is a number (or bool), a gradient `[v0, ..., v_{m-1}]` interpolated over the layers,
or a filter list `[{filter: "self_attn", value: ...}, {value: ...}]` where the first entry whose
filter is a substring of the tensor name wins (no filter, or `*`, matches all).
"""
from __future__ import annotations

from typing import Any

from kinmerge.errors import short_repr

Value = Any  # float | bool | list[float] | list[dict]


def check_value(value: Value, *, boolean: bool = False, integer: bool = False) -> str | None:
    """Why `value` is not a valid parameter value, or None when it is. An `integer` value
    is one whole number (a count: no gradient, no filter list)."""
    if integer:
        if _is_number(value) and (not isinstance(value, float) or value.is_integer()):
            return None
        return f"expected one whole number (a count, not a gradient or a filter list), got " \
               f"{short_repr(value)}"
    if boolean:  # mergekit (pydantic) also reads 0 and 1 as false and true
        ok = isinstance(value, bool) or _is_number(value) and value in (0, 1)
        return None if ok else f"expected true or false, got {short_repr(value)}"
    if _is_number(value):
        return None
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return None
    if isinstance(value, list) and value and all(isinstance(e, dict) for e in value):
        for e in value:
            extra = set(e) - {"filter", "value"}
            if extra or "value" not in e:
                keys = short_repr(sorted(e, key=str))
                return f"filter entries take keys `filter` and `value`, got {keys}"
            if not (e.get("filter") is None or isinstance(e["filter"], str)):
                return f"a filter must be a string, got {short_repr(e['filter'])}"
            why = check_value(e["value"])
            if why or isinstance(e["value"], list) and isinstance(e["value"][0], dict):
                return why or "a filter entry's value cannot itself be a filter list"
        return None
    return ("expected a number, a gradient (list of numbers) or a filter list "
            f"([{{filter: ..., value: ...}}]), got {short_repr(value)}")


def numbers_in(value: Value) -> list[tuple[str, float]]:
    """(location suffix, number) for every number in a checked value: `""` for a plain
    number, `[i]` for a gradient anchor, `[i].value` / `[i].value[j]` inside a filter list."""
    if _is_number(value):
        return [("", value)]
    if not isinstance(value, list):
        return []
    out = []
    for i, v in enumerate(value):
        if isinstance(v, dict):
            out += [(f"[{i}].value{s}", x) for s, x in numbers_in(v.get("value"))]
        elif _is_number(v):
            out.append((f"[{i}]", v))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def gradient_at(anchors: list[float], u: float) -> float:
    """Linear interpolation of `anchors` at relative position u in [0, 1].

    Written as (1 - f)·v_i + f·v_{i+1} with i = floor(u·(m − 1)), the form mergekit
    evaluates, so values round identically (a density that lands a hair off changes
    int(density·numel), hence which entries TIES keeps).
    """
    if len(anchors) == 1:
        return float(anchors[0])
    x = u * (len(anchors) - 1)
    i = int(x)
    j = min(len(anchors) - 1, i + 1)
    f = x - i
    return float((1 - f) * anchors[i] + f * anchors[j])


def value_at(value: Value, tensor: str, u: float) -> float | bool | None:
    """Resolve `value` for `tensor` at relative layer position u; None if no filter matches."""
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return float(value)
    if isinstance(value[0], dict):
        for entry in value:
            f = entry.get("filter")
            if f in (None, "*") or f in tensor:
                return value_at(entry["value"], tensor, u)
        return None
    return gradient_at(value, u)
