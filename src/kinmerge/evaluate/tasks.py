"""Fitness tasks as evolve.yml and breed.yml write them: a named evaluator over a search file
(which steers decisions) and an optional held-out file (reported only), with a weight.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

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
