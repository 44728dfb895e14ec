"""Fitness of a model and kinship between two: the two measurements breeding needs.

The fitness is kinmerge.evaluate's one interface (`Fitness`: scores of a `Candidate` on a
split, and their combination); kinship is a plain callable, so the loop can be driven by
stand-ins in tests. The defaults built here call the real thing (`kinmerge.evaluate` tasks or
a user's function, `kinmerge.kinship`).
"""
from __future__ import annotations

import logging
from typing import Callable

from kinmerge.search.breed.config import FitnessSpec
from kinmerge.evaluate.fitness import Fitness, TaskFitness, as_fitness  # noqa: F401

log = logging.getLogger(__name__)

KinshipFn = Callable[[str, str, str, str], float]  # (model a, model b, base, metric) -> value


def kinmerge_kinship(a: str, b: str, base: str, metric: str) -> float:
    """Kinship of a and b measured on their deltas from `base`
    (docs/concepts/kinship-metrics.md)."""
    from kinmerge.kinship import kinship

    return float(kinship(a, b, base=base, metrics=[metric])[metric])


def from_spec(spec: FitnessSpec) -> Fitness:
    """The fitness breed.yml describes."""
    return TaskFitness(spec)
