"""Fitness of a model directory and kinship between two: the two measurements breeding needs.

Both are plain callables so the loop can be driven by stand-ins in tests; the defaults built
here call the real thing (`kinmerge.evaluate` tasks or a user's function, `kinmerge.kinship`).
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Callable, Protocol

from kinmerge.breed.config import FitnessSpec, TaskSpec
from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)


class Fitness(Protocol):
    def __call__(self, model_dir: Path) -> dict[str, float]:
        """Task scores of the model in `model_dir` (the fitness is their weighted mean)."""


KinshipFn = Callable[[str, str, str, str], float]  # (model a, model b, base, metric) -> value


def weighted_mean(scores: dict[str, float], weights: dict[str, float]) -> float:
    total = sum(weights.get(k, 1.0) for k in scores)
    return sum(weights.get(k, 1.0) * v for k, v in scores.items()) / (total or 1.0)


def kinmerge_kinship(a: str, b: str, base: str, metric: str) -> float:
    """Kinship of a and b measured on their deltas from `base` (semantics.md section 3)."""
    from kinmerge.kinship import kinship

    return float(kinship(a, b, base=base, metrics=[metric])[metric])


def from_spec(spec: FitnessSpec, split: str = "search") -> tuple[Fitness, dict[str, float]]:
    """The fitness breed.yml describes, and the weight of each score name."""
    evaluators = [_evaluator(t, split) for t in spec.tasks]
    weights = {t.name: t.weight for t in spec.tasks}
    function = _import(spec.function) if spec.function else None

    def fitness(model_dir: Path) -> dict[str, float]:
        out: dict[str, float] = {}
        if evaluators:  # the model is loaded once and shared by the tasks
            from kinmerge.evaluate import evaluate_model

            out.update(evaluate_model(Path(model_dir), evaluators))
        if function is not None:
            got = function(Path(model_dir))
            if isinstance(got, dict):  # a function may report several named scores
                out.update({k: float(v) for k, v in got.items()})
            else:
                out["function"] = float(got)
        return out

    return fitness, weights


def _import(target: str) -> Callable:
    mod, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise KinmergeError(f"cannot import fitness function {target!r}: {e}",
                            where="fitness.function",
                            fix="give it as package.module:callable, importable here") from e


def _evaluator(task: TaskSpec, split: str):
    """A built-in evaluator of kinmerge.evaluate for one task of breed.yml."""
    from kinmerge.evaluate import make_evaluator

    path = task.heldout if split == "heldout" else task.search
    if path is None:
        raise KinmergeError(f"task {task.name!r} has no {split} file", where="fitness.tasks",
                            fix=f"add `{split}:` to the task")
    return make_evaluator(task.evaluator, path, **{"name": task.name, **task.options})
