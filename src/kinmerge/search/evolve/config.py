"""evolve.yml: what to merge, what to search, how to score, how long (pydantic, at the edge).

>>> cfg = load_evolve_config("examples/evolve-zoo.yml")      # doctest: +SKIP
>>> cfg.mode, cfg.budget.trials                              # doctest: +SKIP
('ps', 48)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from kinmerge.errors import ConfigError, KinmergeError
from kinmerge.io.configfile import MAX_COUNT, MAX_MODELS, Count, Real, Seed, read_yaml, validate
from kinmerge.evaluate.tasks import FitnessSpec, LmEvalSpec, TaskSpec  # noqa: F401 (re-exported)

Mode = Literal["ps", "dfs", "ps+dfs"]
MAX_LAYER_GROUPS = 1024
MAX_FILTERS = 64
MAX_REPEATS = 16  # DFS repetitions of the two models' layers
MAX_WORKERS = 256
Range = tuple[Real, Real]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchSpec(_Strict):
    """Which recipe values are searched and over which range (the genome maps [0, 1] onto it)."""

    # each range finite: the genome maps [0, 1] onto it, and [0, .inf] maps onto nothing
    params: Annotated[dict[str, Range], Field(max_length=64)] = {
        "weight": (0.0, 1.0), "density": (0.0, 1.0)}
    # >1: one value per group of layers, exported as a gradient
    layer_groups: Annotated[StrictInt, Field(ge=1, le=MAX_LAYER_GROUPS)] = 1
    # one value per filter (plus a catch-all), exported as a filter list
    filters: Annotated[list[str], Field(max_length=MAX_FILTERS)] = []

    @field_validator("params")
    @classmethod
    def _ranges(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (lo, hi) in v.items():
            if not lo < hi:
                raise ValueError(f"range of {name!r} must have low < high, got [{lo}, {hi}]")
        return v


class DfsSpec(_Strict):
    """Data-flow space: r repetitions of A's then B's layers, and transition scales."""

    repeats: Annotated[StrictInt, Field(ge=1, le=MAX_REPEATS)] = 3
    scales: Literal["matrix", "none"] = "matrix"
    scale_range: Range = (0.5, 1.5)  # genome 0.5 decodes to the middle: keep 1 there

    @field_validator("scale_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"scale_range must have low < high, got [{v[0]}, {v[1]}]")
        return v


class Budget(_Strict):
    trials: Count = 40  # PS trials (finished ones; failures are re-asked)
    dfs_trials: Count | None = None  # DFS trials; default: trials
    popsize: Annotated[StrictInt, Field(ge=2, le=10_000)] | None = None  # default 4+⌊3 ln n⌋


class Baselines(_Strict):
    """Hand recipes scored on the held-out split beside the winner."""

    grid: bool = True  # task_arithmetic / ties / dare_ties at uniform weights
    weights: Annotated[list[Real], Field(max_length=64)] = [0.5, 1.0]
    densities: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(max_length=64)] = [0.5]
    recipes: Annotated[dict[str, str], Field(max_length=64)] = {}  # name -> recipe YAML path


class EvolveConfig(_Strict):
    mode: Mode = "ps"
    base_model: str | None = None
    models: Annotated[list[str], Field(max_length=MAX_MODELS)]
    template: dict[str, Any] = {"merge_method": "dare_ties", "dtype": "float32"}
    search: SearchSpec = SearchSpec()
    dfs: DfsSpec = DfsSpec()
    dfs_partner: str | None = None  # ps+dfs: model B of the DFS run (default: models[1])
    fitness: FitnessSpec
    budget: Budget = Budget()
    baselines: Baselines = Baselines()
    seed: Seed = 0
    device: str = "cpu"  # where candidates are merged and scored (cpu, cuda, cuda:N)
    # bytes each worker keeps of the source models' tensors across candidates, on `device`
    # (e.g. 6GB, 500M, or bytes; 0: read the sources for every candidate). Same results.
    worker_cache: int = 0

    @field_validator("worker_cache", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        from kinmerge.errors import KinmergeError
        from kinmerge.io.shards import parse_size

        if v in (0, "0"):
            return 0
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int)
                                                                     and v < 0):
            raise ValueError("worker_cache is a size such as 6GB, 500M or a number of bytes")
        try:
            return parse_size(v)
        except KinmergeError:
            raise ValueError(f"worker_cache {v!r} is not a size: write e.g. 6GB, 500M, 2GiB "
                             "or a number of bytes (0 turns the cache off)") from None

    @model_validator(mode="after")
    def _shape(self) -> "EvolveConfig":
        if self.mode == "dfs" and len(self.models) != 2:
            raise ValueError("mode dfs takes exactly two models: A then B")
        if self.mode != "dfs" and not self.models:
            raise ValueError("models must name at least one source model")
        if "models" in self.template or "slices" in self.template:
            raise ValueError("template holds the method and global parameters only; "
                             "the models come from `models`")
        return self

    def fingerprint(self) -> str:
        """A hash of what shapes the search (a resumed run must match it); the trial budget
        and the baselines are left out, so a resumed run may extend the budget; so are the
        device and the worker cache, so a run started on a CPU may be resumed on a GPU."""
        data = self.model_dump(mode="json", exclude={"baselines": True, "device": True,
                                                     "worker_cache": True,
                                                     "budget": {"trials", "dfs_trials"}})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_evolve_config(source: "str | Path | dict | EvolveConfig") -> EvolveConfig:
    """Parse evolve.yml (a path, a dict or a config); every problem is reported at once."""
    if isinstance(source, EvolveConfig):
        return source
    data, where = read_yaml(source, subject="evolve config", example="examples/evolve-zoo.yml")
    return validate(EvolveConfig, data, subject="evolve config", where=where,
                    fix="see docs/guides/evolve.md and examples/evolve-zoo.yml")


def check_run_options(trials: int | None, workers: int) -> None:
    """The command line's numbers (--trials, --workers) of evolve and breed, bounded like the
    configs' numbers."""
    problems = []
    for name, v, lo, hi in (("trials", trials, 1, MAX_COUNT),
                            ("workers", workers, 1, MAX_WORKERS)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            problems.append(f"{name} must be a whole number in [{lo}, {hi}], got {v!r}")
    if problems:
        raise ConfigError(problems, subject="run options", where="--trials / --workers",
                          fix="give a positive number of trials and of workers")


def eval_threads() -> int | None:
    """KINMERGE_EVAL_THREADS (the count of evolve's scoring threads when `threads=` names
    none), read once here and passed in every job, so each worker, on any node, uses it."""
    n = os.environ.get("KINMERGE_EVAL_THREADS", "").strip()
    if not n:
        return None
    try:
        return int(n)
    except ValueError:
        raise KinmergeError(f"KINMERGE_EVAL_THREADS={n!r} is not a whole number",
                            where="the environment", fix="set a positive integer, or unset "
                            "it (kinmerge's thread policy then decides)") from None
