"""Adapters from evolve.yml tasks to the evaluators of `kinmerge.evaluate` and lm-eval."""
from __future__ import annotations

from typing import Callable

from kinmerge.errors import KinmergeError
from kinmerge.evolve.config import LmEvalSpec, TaskSpec


def builtin_scorer(task: TaskSpec, split_file: Callable) -> Callable:
    raise KinmergeError("built-in evaluators are not available yet", where="fitness.tasks",
                        fix="use fitness.function")


def lm_eval_scorer(task: LmEvalSpec) -> Callable:
    raise KinmergeError("lm-eval is not available yet", where="fitness.lm_eval",
                        fix="use fitness.function")
