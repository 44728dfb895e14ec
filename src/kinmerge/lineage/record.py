"""Who descends from whom: one record per model, stored as lineage.json beside the model.

A model kinmerge did not make (a pool model, a hub checkpoint) is a *root*: its id is derived
from its reference. A merged model's id is derived from its recipe, seed and parents' ids, so
the same merge always gets the same id. Each lineage.json embeds the records of all the
model's ancestors, so the family tree can be followed across runs even if parent directories
move or were never on this machine.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
from pathlib import Path

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from kinmerge.errors import ModelLoadError
from kinmerge.io.safe_path import inside, present, read_at_most

log = logging.getLogger(__name__)
FILE = "lineage.json"
# a record with its ancestors' is a few kB a model; 64 MiB is a tree of thousands of merges
MAX_BYTES = 64 * 2**20


class LineageRecord(BaseModel):
    """One model of the family. Numbers are finite: a kinship or gain of NaN is undefined
    (None), any other NaN or infinity is refused; a generation is from 0 to 10**6."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str
    name: str
    parents: list[str] = []  # ids, in recipe order
    ref: str | None = None  # where the model was found or written (path or hub id)
    recipe: str | None = None  # the recipe's YAML
    method: str | None = None
    seed: int | None = None
    # metric -> value between the parents; None where it is undefined (a zero task vector)
    parent_kinship: dict[str, float | None] = {}
    scores: dict[str, float] = {}
    merge_gain: float | None = None  # score(child) - mean score(parents)
    # breeding with `select: predicted`: the gain expected before the merge, and the model
    # that expected it ("fit" or "prior"; kinmerge/breed/predict.py)
    predicted_gain: float | None = None
    predicted_by: str | None = None
    generation: int | None = Field(default=None, ge=0, le=10**6)
    created: str | None = None
    tool: str = "kinmerge"

    @field_validator("parent_kinship", mode="before")
    @classmethod
    def _undefined_kinship(cls, v):
        """NaN (kinship of a zero task vector) is recorded as undefined, None."""
        if isinstance(v, dict):
            return {k: None if isinstance(x, float) and math.isnan(x) else x
                    for k, x in v.items()}
        return v

    @field_validator("merge_gain", "predicted_gain", mode="before")
    @classmethod
    def _undefined_gain(cls, v):
        return None if isinstance(v, float) and math.isnan(v) else v

    @property
    def is_root(self) -> bool:
        return not self.parents


class Lineage(BaseModel):
    """The content of lineage.json: the model's record and those of all its ancestors."""

    model_config = ConfigDict(extra="forbid")

    model: LineageRecord
    ancestors: dict[str, LineageRecord] = {}

    @model_validator(mode="after")
    def _a_tree(self) -> "Lineage":
        """Each ancestor under its own id, and no model its own ancestor (a cycle would send
        every reader of the tree round it forever)."""
        for key, rec in self.ancestors.items():
            if key != rec.id:
                raise ValueError(f"ancestors[{key[:80]!r}] holds the record of {rec.id[:80]!r}")
        cycle = find_cycle(self.all())
        if cycle:
            shown = [c[:40] for c in cycle]
            if len(shown) > 7:
                shown = shown[:3] + [f"... ({len(cycle) - 6} more)"] + shown[-3:]
            raise ValueError("its parents form a cycle: " + " -> ".join(shown))
        return self

    def parents_of(self, rid: str) -> list[LineageRecord]:
        rec = self.model if rid == self.model.id else self.ancestors[rid]
        return [self.ancestors[p] for p in rec.parents if p in self.ancestors]

    def all(self) -> dict[str, LineageRecord]:
        return {**self.ancestors, self.model.id: self.model}


def find_cycle(records: dict[str, LineageRecord]) -> list[str]:
    """A cycle of parent links among `records` (its ids, the first repeated last), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in records:
        if state.get(start):
            continue
        path, stack = [start], [iter(records[start].parents)]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt in records and state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt in records and not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(records[nxt].parents))
    return []


def root_id(ref: str) -> str:
    """Id of a model kinmerge did not make: its resolved reference."""
    p = Path(ref).expanduser()
    key = str(p.resolve()) if p.exists() else ref
    return "root-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def merge_id(recipe_yaml: str, seed: int, parents: list[str]) -> str:
    h = hashlib.sha256(json.dumps([recipe_yaml, seed, parents]).encode())
    return "m-" + h.hexdigest()[:12]


def read(model_dir: str | os.PathLike) -> Lineage | None:
    """The lineage stored beside a model, or None; a ModelLoadError if it is not one."""
    f = Path(model_dir) / FILE
    if not present(f):
        return None
    inside(model_dir, FILE, what=FILE)
    return read_file(f)


def read_file(f: Path, model: type[BaseModel] | None = None):
    """`f` parsed as a Lineage (or `model`), at most MAX_BYTES; one ModelLoadError whatever
    is wrong with it."""
    data = read_at_most(f, MAX_BYTES, what=f.name, holder="a lineage record",
                        fix="repair it, or delete it to treat the model as a root")
    try:
        return (model or Lineage).model_validate_json(data)
    except ValidationError as e:  # bad JSON or not a lineage record: say where and what
        first = e.errors()[0]
        at = ".".join(str(x) for x in first.get("loc", ()))
        more = f"; {e.error_count() - 1} more" if e.error_count() > 1 else ""
        raise ModelLoadError(f"{f.name} is not a kinmerge lineage record "
                             f"({(at + ': ' if at else '') + first['msg']}"[:300] + f"{more})",
                             where=str(f),
                             fix="repair it, or delete it to treat the model as a root") from None


def write(model_dir: str | os.PathLike, lineage: Lineage) -> Path:
    f = Path(model_dir) / FILE
    tmp = f.with_suffix(".json.tmp")
    tmp.write_text(lineage.model_dump_json(indent=2, exclude_none=True) + "\n")
    tmp.replace(f)
    return f


def of_parent(ref: str, model_dir: Path | None) -> Lineage:
    """A parent's lineage: its own lineage.json, or a fresh root record."""
    try:
        found = read(model_dir) if model_dir is not None else None
    except ModelLoadError as e:  # a stranger's bad lineage.json must not block a merge
        log.warning("ignoring the lineage of %s: %s", ref, e.what)
        found = None
    if found is not None:
        return found
    return Lineage(model=LineageRecord(id=root_id(ref), name=Path(ref).name or ref, ref=ref))


def for_merge(name: str, out: str, recipe_yaml: str, method: str, seed: int,
              parents: list[Lineage], **extra) -> Lineage:
    """The lineage of a model merged from `parents` (each with its own ancestors)."""
    ancestors: dict[str, LineageRecord] = {}
    for p in parents:
        ancestors.update(p.all())
    ids = [p.model.id for p in parents]
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rec = LineageRecord(id=merge_id(recipe_yaml, seed, ids), name=name, parents=ids, ref=out,
                        recipe=recipe_yaml, method=method, seed=seed, created=now, **extra)
    return Lineage(model=rec, ancestors=ancestors)


def update(model_dir: str | os.PathLike, **fields) -> Lineage:
    """Set fields of a model's own record (scores, kinship, generation...) in place."""
    lin = read(model_dir)
    if lin is None:
        from kinmerge.errors import KinmergeError
        raise KinmergeError(f"no {FILE} in {model_dir}", where=str(model_dir),
                            fix="only models merged by kinmerge carry a lineage")
    lin = lin.model_copy(update={"model": lin.model.model_copy(update=fields)})
    write(model_dir, lin)
    return lin
