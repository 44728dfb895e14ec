"""The `fitness:` block of evolve.yml, breed.yml and soup.yml (one spec for all three):
built-in tasks (a named evaluator over a search file, which steers decisions, and an optional
held-out file, reported only, with a weight), lm-evaluation-harness tasks, a user function.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, model_validator

from kinmerge.errors import KinmergeError


class TaskSpec(BaseModel):
    """One built-in task: a kinmerge.evaluate evaluator over JSONL prompt/answer files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    evaluator: str = "exact_match"
    search: str  # prompts that steer the search (evolve) or the breeding
    heldout: str | None = None  # prompts never used for decisions; for the final report
    weight: float = 1.0
    options: dict[str, Any] = {}  # passed to the evaluator (max_examples, max_new_tokens, ...)


class LmEvalSpec(BaseModel):
    """One lm-evaluation-harness task and the metric taken from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str  # scored during the search
    heldout_task: str | None = None  # scored for the final report (default: `task`)
    metric: str = "acc"
    weight: float = 1.0
    limit: int | None = None
    include_path: str | None = None  # folder of local task YAMLs


class FitnessSpec(BaseModel):
    """Fitness = weighted mean of the task scores. `function` is "package.module:callable",
    called as f(candidate, split) -> float | {name: float} (see kinmerge.evaluate.fitness)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[TaskSpec] = []
    lm_eval: list[LmEvalSpec] = []
    function: str | None = None

    @model_validator(mode="after")
    def _some(self) -> "FitnessSpec":
        if not (self.tasks or self.lm_eval or self.function):
            raise ValueError("fitness needs tasks, lm_eval tasks or a function")
        return self


def task_file(task: TaskSpec, split: str) -> str:
    """The task's prompt file for `split` ("search" or "heldout")."""
    path = task.heldout if split == "heldout" else task.search
    if path is None:
        raise KinmergeError(f"task {task.name!r} has no {split} file", where="fitness.tasks",
                            fix=f"add `{split}:` to the task")
    return path


def weighted_mean(scores: dict[str, float], weights: dict[str, float]) -> float:
    """The fitness: the mean of the task scores weighted by their tasks' weights (default 1)."""
    total = sum(weights.get(k, 1.0) for k in scores)
    return sum(weights.get(k, 1.0) * v for k, v in scores.items()) / (total or 1.0)


def import_callable(target: str) -> Callable:
    """A user's fitness function given as "package.module:callable"."""
    mod, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise KinmergeError(f"cannot import fitness function {target!r}: {e}",
                            where="fitness.function",
                            fix="give it as package.module:callable, importable here") from e
