"""Typed results: frozen dataclasses that turn into JSON only at the edge (`to_dict()`).

A `Record` is also a read-only mapping of its JSON form, as `KinshipResult` is a mapping of
its metrics: code written against the dicts these results used to be (`summary["best"]`,
`g["top_k"]`) keeps working while new code reads attributes (`summary.best_score`).

>>> s = breed(...).summary                                   # doctest: +SKIP
>>> s.stop_reason == s["stop_reason"]                        # doctest: +SKIP
True
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Iterator

OMIT = ()  # field names left out of to_dict() while None (optional parts of a result)


def jsonable(value: Any) -> Any:
    """Records, tuples and paths as JSON values (dicts, lists, strings)."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


class Record(Mapping):
    """Base of the typed results (subclasses are `@dataclass(frozen=True, eq=False)`;
    equality is the mapping's, so a record equals the dict it was saved as)."""

    _omit_none: tuple[str, ...] = OMIT

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self._omit_none:
                continue
            out[f.name] = jsonable(value)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
