"""YAML configuration files — recipes, evolve.yml, breed.yml: read, validate, and every problem
reported at once, a mistyped key with the key that was probably meant."""
from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kinmerge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(source: "str | Path | dict", *, subject: str, example: str,
              allow_text: bool = False,
              error: type[ConfigError] = ConfigError) -> tuple[dict, str]:
    """(mapping, where) from a dict, a YAML file, or (with allow_text) a YAML string."""
    if isinstance(source, dict):
        return source, subject
    text, where = str(source), f"{subject} text"
    is_text = allow_text and not isinstance(source, Path) and "\n" in text
    if not is_text:
        path = Path(source)
        if not path.is_file():
            raise error([f"file not found: {path}"], subject=subject, where=str(path),
                              fix=f"check the path of the {subject}")
        text, where = path.read_text(), str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error([f"not valid YAML: {e}"], subject=subject, where=where,
                          fix="fix the YAML syntax at the line shown") from e
    if not isinstance(data, dict):
        raise error([f"a {subject} is a YAML mapping of keys, got {type(data).__name__}"],
                          subject=subject, where=where, fix=f"start from {example}")
    return data, where


def validate(model: type[M], data: dict, *, subject: str, where: str, fix: str,
             error: type[ConfigError] = ConfigError) -> M:
    """`model` from `data`, or an error listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error([describe(err, model) for err in e.errors()], subject=subject,
                    where=where, fix=fix) from None


def describe(err: dict, root: type[BaseModel]) -> str:
    """One pydantic error as a line a person can act on."""
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        known = list(_model_at(root, err["loc"][:-1]).model_fields)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        return f"unknown key {loc!r} ({hint})"
    if err["type"] == "missing":
        return f"missing required key {loc}"
    return f"{loc}: {err['msg']} (got {err.get('input')!r})" if loc else err["msg"]


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The nested model a location points into (through lists, dicts and optionals)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = _nested_model(field.annotation) if field else None
        if inner is None:
            break
        model = inner
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None
