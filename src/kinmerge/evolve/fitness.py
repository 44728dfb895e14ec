"""Fitness: the weighted mean of task scores of a candidate, on the search or held-out split.

Three kinds of task, mixed freely in evolve.yml: built-in evaluators of `kinmerge.evaluate`
over JSONL files (`tasks`), lm-evaluation-harness tasks (`lm_eval`), and a Python callable
(`function: "package.module:name"`, called as f(candidate, split) -> float | {name: float}).
"""
from __future__ import annotations

import logging
from typing import Callable, Literal, Protocol

from kinmerge.evaluate.tasks import TaskSpec, import_callable, weighted_mean
from kinmerge.evolve.candidate import Candidate
from kinmerge.evolve.config import FitnessSpec, LmEvalSpec

log = logging.getLogger(__name__)
Split = Literal["search", "heldout"]


class Fitness(Protocol):
    def scores(self, candidate: Candidate, split: Split) -> dict[str, float]: ...

    def combine(self, scores: dict[str, float]) -> float: ...


class TaskFitness:
    """The fitness an evolve.yml describes; built once per worker process."""

    def __init__(self, spec: FitnessSpec):
        self.spec = spec
        self.weights: dict[str, float] = {}
        self._scorers: list[tuple[str, Callable[[Candidate, Split], float | dict]]] = []
        for t in spec.tasks:
            self._add(t.name, t.weight, _builtin_scorer(t))
        for t in spec.lm_eval:
            self._add(t.task, t.weight, _lm_eval_scorer(t))
        if spec.function:
            self._add("function", 1.0, import_callable(spec.function))

    def _add(self, name: str, weight: float, fn: Callable) -> None:
        self.weights[name] = weight
        self._scorers.append((name, fn))

    def scores(self, candidate: Candidate, split: Split) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, fn in self._scorers:
            got = fn(candidate, split)
            if isinstance(got, dict):  # a function may report several named scores
                self.weights.update({k: self.weights[name] for k in got if k not in self.weights})
                out.update({k: float(v) for k, v in got.items()})
            else:
                out[name] = float(got)
        return out

    def combine(self, scores: dict[str, float]) -> float:
        """Weighted mean of the task scores (the value CMA-ES maximises)."""
        return weighted_mean(scores, self.weights)


def _builtin_scorer(task: TaskSpec) -> Callable[[Candidate, Split], float]:
    from kinmerge.evolve import scoring

    return scoring.builtin_scorer(task)


def _lm_eval_scorer(task: LmEvalSpec) -> Callable[[Candidate, Split], float]:
    from kinmerge.evolve import scoring

    return scoring.lm_eval_scorer(task)
