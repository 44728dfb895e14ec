"""The demo's typed results: summary.json (`DemoSummary`, with its evolve and breed steps)
and what `run_demo` returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinmerge.record import Record


@dataclass(frozen=True, eq=False)
class DemoEvolve(Record):
    """The demo's evolve step: the search, and the evolved recipe against the best hand merge
    on the same held-out prompts."""

    trials: int
    best_search: float
    best_recipe: str  # as the caller named the demo's folder
    heldout_mean: float
    best_hand_merge: str
    best_hand_mean: float
    beats_best_hand_merge: bool


@dataclass(frozen=True, eq=False)
class DemoBreed(Record):
    """The demo's breeding run, in brief."""

    best_model: str | None
    best_score: float | None
    stop_reason: str
    evaluations: int


@dataclass(frozen=True, eq=False)
class DemoSummary(Record):
    """summary.json of a demo: every model's held-out scores (each skill and the parents'
    mean), the parents, the best hand merge, the kinship matrix, the seconds per step, and
    the evolve and breed steps when they ran."""

    scores: dict[str, dict[str, float]]
    parents: tuple[str, str]
    parent_skills: tuple[str, str]
    best_merge: str
    merges: tuple[str, ...]
    zoo: str
    kinship: dict[str, Any] | None
    seconds: dict[str, float]
    evolve: DemoEvolve | None = None
    breed: DemoBreed | None = None

    _omit_none = ("evolve", "breed")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DemoSummary":
        return cls(d["scores"], tuple(d["parents"]),  # type: ignore[arg-type]
                   tuple(d["parent_skills"]), d["best_merge"], tuple(d["merges"]), d["zoo"],
                   d["kinship"], d["seconds"],
                   DemoEvolve(**d["evolve"]) if d.get("evolve") else None,
                   DemoBreed(**d["breed"]) if d.get("breed") else None)


@dataclass
class DemoResult:
    out: Path
    summary: DemoSummary
    kinship: object | None = None  # KinshipMatrix, when kinship is available
    timings: dict[str, float] = field(default_factory=dict)
