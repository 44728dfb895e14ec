"""Evolution's typed result: summary.json of a run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kinmerge.record import Record


@dataclass(frozen=True, eq=False)
class EvolveSummary(Record):
    """The search's outcome and, with held-out files, the winner against the hand recipes
    and the sources on the held-out split (those parts are None, and left out of the JSON,
    without them)."""

    mode: str
    trials: int
    best_search: float
    timing: dict[str, dict[str, float]]
    best_heldout: float | None = None
    best_heldout_scores: dict[str, float] | None = None
    best_model_heldout: float | None = None  # best-model/ as saved, scored again
    best_model_matches: bool | None = None
    baselines_heldout: dict[str, float] | None = None
    sources_heldout: dict[str, float] | None = None
    best_baseline: str | None = None
    winner_beats_best_baseline: bool | None = None
    wall_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys added by newer versions

    _omit_none = ("best_heldout", "best_heldout_scores", "best_model_heldout",
                  "best_model_matches", "baselines_heldout", "sources_heldout",
                  "best_baseline", "winner_beats_best_baseline", "wall_seconds")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvolveSummary":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(out.pop("extra"))
        return out
