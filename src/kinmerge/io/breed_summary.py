"""A breed run's summary.json as typed records: each generation's record and the run's
summary, and `read_summary`, the one reader of the file.

They live here, below both, because the breeder (kinmerge.search.breed) writes them and the
report (kinmerge.report) and the README's number generators read them back;
`kinmerge.search.breed.summary` is their name on the breeding side."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinmerge.errors import KinmergeError
from kinmerge.record import Record

FILE = "summary.json"
MAX_SUMMARY = 64 * 2**20  # bytes: a run of many thousand generations is well under this


@dataclass(frozen=True, eq=False)
class Merge(Record):
    parents: tuple[str, str]
    child: str
    origin: str  # "top-k", "explore", "predicted", "random" or "fill"
    # select: predicted: the gain expected of the child, and by which model ("fit" or
    # "prior"); left out of summary.json for the other origins
    predicted_gain: float | None = None
    predicted_by: str | None = None

    _omit_none = ("predicted_gain", "predicted_by")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Merge":
        return cls(tuple(d["parents"]), d["child"], d["origin"],  # type: ignore[arg-type]
                   d.get("predicted_gain"), d.get("predicted_by"))


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
    # select: predicted: candidate pairs skipped as predicted useless (left out otherwise)
    skipped: int | None = None

    _omit_none = ("skipped",)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Generation":
        return cls(d["generation"], tuple(d["top_k"]), d["top_k_kinship"], d["best"],
                   d["best_model"],
                   tuple(Merge.from_dict(m) for m in d["merged"]),
                   tuple(d["explored"]) if d["explored"] else None,  # type: ignore[arg-type]
                   d["evaluations"], d.get("skipped"))


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
    select: str = "topk"  # how pairs were chosen: "topk" (Algorithm 1), "predicted", "random"
    partner: str = "least_related"  # exploration's partner: "least_related" or "random"
    stall: str = "stop"  # when the top-k stops changing: "stop" or "fill"
    # best fitness so far after each counted evaluation, in the order a sequential run makes
    # them (the pool's first): the run's anytime curve
    trace: tuple[float, ...] = ()
    # kinship pairs measured (in `metric`): in all, and those the pair choices consulted
    # (exploration's partner, predicted gains, the threshold); the rest are for the record
    # (merged parents, the top-k)
    kinship_measured: int = 0
    kinship_for_selection: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BreedSummary":
        """summary.json read back; the fields a run before the controls did not write take
        their defaults (what such a run did)."""
        return cls(d["explore"], d["k"], d["metric"], d["evaluations"], d["budget"],
                   d["best_score"], d["best_model"], d["best_path"], d["stop_reason"],
                   tuple(Generation.from_dict(g) for g in d["generations"]),
                   d.get("select", "topk"), d.get("partner", "least_related"),
                   d.get("stall", "stop"), tuple(d.get("trace", ())),
                   d.get("kinship_measured", 0), d.get("kinship_for_selection", 0))


def read_summary(run: str | Path) -> BreedSummary:
    """The summary.json of the breed run in `run` as its typed record, the one reader of
    that file; one KinmergeError whatever is wrong with it (missing, too large, not JSON,
    not a breed run's summary)."""
    f = Path(run) / FILE
    try:
        if f.stat().st_size > MAX_SUMMARY:
            raise ValueError(f"{f.stat().st_size} bytes, more than a summary holds")
        return BreedSummary.from_dict(json.loads(f.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise KinmergeError(f"{run} holds no readable breed summary ({type(e).__name__}: "
                            f"{str(e)[:100]})", where=str(f),
                            fix="point at a breed run's folder (rerunning breed on it "
                                "resumes the run and writes the summary again)") from None
