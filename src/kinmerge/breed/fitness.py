"""Fitness of a model directory and kinship between two: the two measurements breeding needs.

Both are plain callables so the loop can be driven by stand-ins in tests; the defaults built
here call the real thing (`kinmerge.evaluate` tasks or a user's function, `kinmerge.kinship`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

from kinmerge.breed.config import FitnessSpec
from kinmerge.evaluate.tasks import TaskSpec, import_callable, task_file

log = logging.getLogger(__name__)


class Fitness(Protocol):
    def __call__(self, model_dir: Path) -> dict[str, float]:
        """Task scores of the model in `model_dir` (the fitness is their weighted mean)."""


KinshipFn = Callable[[str, str, str, str], float]  # (model a, model b, base, metric) -> value


def kinmerge_kinship(a: str, b: str, base: str, metric: str) -> float:
    """Kinship of a and b measured on their deltas from `base` (semantics.md section 3)."""
    from kinmerge.kinship import kinship

    return float(kinship(a, b, base=base, metrics=[metric])[metric])


def from_spec(spec: FitnessSpec, split: str = "search") -> tuple[Fitness, dict[str, float]]:
    """The fitness breed.yml describes, and the weight of each score name."""
    evaluators = [_evaluator(t, split) for t in spec.tasks]
    weights = {t.name: t.weight for t in spec.tasks}
    function = import_callable(spec.function) if spec.function else None

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


def _evaluator(task: TaskSpec, split: str):
    """A built-in evaluator of kinmerge.evaluate for one task of breed.yml."""
    from kinmerge.evaluate import make_evaluator

    return make_evaluator(task.evaluator, task_file(task, split),
                          **{"name": task.name, **task.options})
