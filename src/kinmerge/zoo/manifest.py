"""zoo.json as a typed record: what a zoo folder holds (models, task files, its recipe).

>>> m = read_manifest("zoo/")                       # doctest: +SKIP
>>> m.experts, m.models["add"].skill, m.skills["add"]["heldout"]   # doctest: +SKIP
(('add', 'add_seed2', 'rev', 'sort'), 'add', 'tasks/add/heldout.jsonl')
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinmerge.errors import KinmergeError
from kinmerge.record import Record


@dataclass(frozen=True, eq=False)
class ZooModel(Record):
    path: str  # folder, relative to the zoo
    skill: str | None  # None: the base


@dataclass(frozen=True, eq=False)
class ZooManifest(Record):
    format: int
    seed: int
    digest: str
    config: dict[str, Any]  # the ZooConfig it was built with (ZooConfig.to_dict())
    models: dict[str, ZooModel]
    skills: dict[str, dict[str, str]]  # skill -> split -> task file, relative to the zoo
    parents: tuple[str, str]  # the pair the demo merges
    text: str  # the perplexity text file, relative to the zoo
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by newer versions

    @property
    def experts(self) -> tuple[str, ...]:
        return tuple(n for n, m in self.models.items() if m.skill)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ZooManifest":
        known = ("format", "seed", "digest", "config", "models", "skills", "parents", "text")
        return cls(d["format"], d["seed"], d["digest"], d["config"],
                   {n: ZooModel(m["path"], m["skill"]) for n, m in d["models"].items()},
                   {str(s): {str(k): str(v) for k, v in files.items()}  # shape checked
                    for s, files in d["skills"].items()},
                   tuple(d["parents"]), d["text"],  # type: ignore[arg-type]
                   {k: v for k, v in d.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(out.pop("extra"))
        return out


MAX_MANIFEST = 4 * 2**20  # bytes: a zoo of thousands of models is well under this


def read_manifest(root: str | Path) -> ZooManifest:
    """The manifest of the zoo in `root`, the one reader of zoo.json; a folder without one,
    or a file that is not a manifest (too large, not JSON, the wrong shape), is a clear
    error."""
    f = Path(root) / "zoo.json"
    try:
        if f.stat().st_size > MAX_MANIFEST:
            raise ValueError(f"{f.stat().st_size} bytes, more than a manifest holds")
        return ZooManifest.from_dict(json.loads(f.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise KinmergeError(f"{root} holds no readable zoo manifest ({e})", where=str(f),
                            fix="build one with `kinmerge zoo build DIR`") from None
