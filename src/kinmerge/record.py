"""Typed results: frozen dataclasses that turn into JSON only at the edge (`to_dict()`).

Results are read by attribute (`summary.best_score`, `g.top_k`); `to_dict()` is their JSON.
For one release a `Record` still reads as the mapping of its JSON form, as the dicts these
results used to be (`summary["best"]`), with a DeprecationWarning naming the attribute.

>>> s = breed(...).summary                                   # doctest: +SKIP
>>> s.stop_reason, s.to_dict()["stop_reason"]                # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import warnings
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
    a record equals another with the same JSON form, and the dict it was saved as)."""

    _omit_none: tuple[str, ...] = OMIT

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self._omit_none:
                continue
            out[f.name] = jsonable(value)
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self.to_dict() == other.to_dict()
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    __hash__ = None  # type: ignore[assignment]  (records hold dicts)

    def __getitem__(self, key: str) -> Any:
        """Deprecated: the key of the JSON form (read the attribute, or `to_dict()`)."""
        warnings.warn(f"reading a typed result by key is deprecated (removed in kinmerge 0.3):"
                      f" read {type(self).__name__}.{key} or to_dict()[{key!r}]",
                      DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
