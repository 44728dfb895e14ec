"""YAML configuration files — recipes, evolve.yml, breed.yml: read, validate, and every problem
reported at once, a mistyped key with the key that was probably meant."""
from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, StrictInt, ValidationError

from kinmerge.io import yamlload
from kinmerge.errors import ConfigError, short_repr

M = TypeVar("M", bound=BaseModel)
MAX_LISTED = 50  # problems listed in one error; the rest are counted

# The bounded number types of every configuration file (evolve.yml, breed.yml, soup.yml, the
# fitness block): one place that says what a seed, a count or a real number may be.
MAX_SEED = 2**32 - 1  # numpy's and optuna's samplers take seeds below 2**32
MAX_COUNT = 1_000_000  # trials, generations, evaluations, examples: far past any real run
MAX_MODELS = 1000  # models of a pool, a soup, an evolve run
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]
Count = Annotated[StrictInt, Field(ge=1, le=MAX_COUNT)]  # a positive count
Real = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]  # finite, sane
Weight = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e6)]  # a task's weight


def read_yaml(source: "str | Path | dict", *, subject: str, example: str,
              allow_text: bool = False,
              error: type[ConfigError] = ConfigError) -> tuple[dict, str]:
    """(mapping, where) from a dict, a YAML file, or (with allow_text) a YAML string."""
    if isinstance(source, dict):
        return source, subject
    text, where = str(source), f"{subject} text"
    is_text = allow_text and not isinstance(source, Path) and "\n" in text
    if not is_text:
        text, where = read_text(Path(source), subject=subject, error=error)
    try:
        data = yamlload.load(text)
    except yamlload.MultipleDocumentsError as e:
        raise several_documents(e.count, subject, where, error) from None
    except yamlload.YamlError as e:
        raise error([f"not valid YAML: {e}"], subject=subject, where=where,
                    fix="fix the YAML at the line shown") from None
    if not isinstance(data, dict):
        raise error([f"a {subject} is a YAML mapping of keys, got {type(data).__name__}"],
                          subject=subject, where=where, fix=f"start from {example}")
    return data, where


def several_documents(count: int, subject: str, where: str,
                      error: type[ConfigError]) -> ConfigError:
    """Several `---`-separated documents where one is read: for a recipe, that is a
    multi-stage recipe (mergekit-multi's format), which `kinmerge merge` runs."""
    if subject == "recipe":
        path = where if where != "recipe text" else "RECIPE"
        return error([f"the file holds {count} YAML documents: a multi-stage recipe "
                      "(mergekit-multi's format), which this reads as one recipe"],
                     subject=subject, where=where,
                     fix=f"run it with kinmerge.merge({path!r}, OUT) (it runs the stages "
                         "in order; kinmerge.core.multistage reads them)",
                     cli_fix=f"run it with `kinmerge merge {path} OUT` (it runs the stages in "
                             "order)")
    return error([f"the file holds {count} YAML documents (separated by `---`); a {subject} "
                  "is one"], subject=subject, where=where,
                 fix="keep one document: remove the `---` lines and merge the parts")


def read_text(path: Path, *, subject: str,
              error: type[ConfigError] = ConfigError) -> tuple[str, str]:
    """(text, where) of a UTF-8 file of at most yamlload.MAX_BYTES bytes."""
    def fail(problem: str, fix: str):
        return error([problem], subject=subject, where=str(path), fix=fix)

    if not path.is_file():
        what = "not a regular file" if path.exists() else "file not found"
        raise fail(f"{what}: {path}", f"check the path of the {subject}")
    try:
        with path.open("rb") as f:
            data = f.read(yamlload.MAX_BYTES + 1)
    except OSError as e:
        raise fail(f"cannot read {path}: {e.strerror or e}", "check the file's permissions")
    if len(data) > yamlload.MAX_BYTES:
        raise fail(f"the file is larger than {yamlload.MAX_BYTES // 2**20} MiB, the limit "
                   f"for a {subject}", f"a {subject} is a small text file; check the path")
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), str(path)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(f"not UTF-8 text: byte 0x{data[e.start]:02x} at line {line} "
                   f"(offset {e.start})", "save the file as UTF-8") from None


def validate(model: type[M], data: dict, *, subject: str, where: str, fix: str,
             error: type[ConfigError] = ConfigError) -> M:
    """`model` from `data`, or an error listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        lines = [describe(err, model) for err in errs[:MAX_LISTED]]
        if len(errs) > MAX_LISTED:
            lines.append(f"... and {len(errs) - MAX_LISTED} more")
        raise error(lines, subject=subject, where=where, fix=fix) from None


def describe(err: dict, root: type[BaseModel]) -> str:
    """One pydantic error as a line a person can act on."""
    key = err["loc"][-1:] == ("[key]",)  # pydantic's marker: a dict's key is at fault
    path = err["loc"][:-1] if key else err["loc"]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    loc += " (a key)" if key else ""
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        known = list(_model_at(root, err["loc"][:-1]).model_fields)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        return f"unknown key {short_repr(loc)} ({hint})"
    if err["type"] == "missing":
        return f"missing required key {loc}"
    got = short_repr(err.get("input"))
    return f"{loc}: {err['msg']} (got {got})" if loc else err["msg"]


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
