"""Breeding's typed results: each generation's record and the run's summary."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinmerge.record import Record


@dataclass(frozen=True, eq=False)
class Merge(Record):
    parents: tuple[str, str]
    child: str
    origin: str  # "top-k" or "explore"


@dataclass(frozen=True, eq=False)
class Generation(Record):
    """What one generation did and where it left the top-k."""

    generation: int
    top_k: tuple[str, ...]
    top_k_kinship: float  # mean pairwise kinship of the top-k
    best: float
    best_model: str
    merged: tuple[Merge, ...]
    explored: tuple[str, str] | None
    evaluations: int  # models scored up to here

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Generation":
        return cls(d["generation"], tuple(d["top_k"]), d["top_k_kinship"], d["best"],
                   d["best_model"],
                   tuple(Merge(tuple(m["parents"]), m["child"], m["origin"])  # type: ignore[arg-type]
                         for m in d["merged"]),
                   tuple(d["explored"]) if d["explored"] else None,  # type: ignore[arg-type]
                   d["evaluations"])


@dataclass(frozen=True, eq=False)
class BreedSummary(Record):
    """summary.json of a breed run."""

    explore: bool
    k: int
    metric: str
    evaluations: int
    budget: int | None
    best_score: float | None
    best_model: str | None
    best_path: str | None
    stop_reason: str
    generations: tuple[Generation, ...]
