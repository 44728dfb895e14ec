"""The built-in evaluators by name, and scoring one model with several of them.

>>> make_evaluator("nonesuch", "x.jsonl")
Traceback (most recent call last):
...
kinmerge.errors.KinmergeError: unknown evaluator 'nonesuch'...
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.base import Evaluator
from kinmerge.evaluate.exact_match import ExactMatch
from kinmerge.evaluate.loglik import MultipleChoice, Perplexity
from kinmerge.evaluate.model import ModelLike, load_model
from kinmerge.threads import with_threads

log = logging.getLogger(__name__)
EVALUATORS: dict[str, type] = {
    "exact_match": ExactMatch,
    "multiple_choice": MultipleChoice,
    "perplexity": Perplexity,
}


def make_evaluator(kind: str, path: str | Path, **options) -> Evaluator:
    """A built-in evaluator by name (`exact_match`, `multiple_choice`, `perplexity`)."""
    if kind not in EVALUATORS:
        raise KinmergeError(f"unknown evaluator {kind!r}", where="evaluator",
                            fix=f"use one of: {', '.join(sorted(EVALUATORS))}")
    try:
        return EVALUATORS[kind](path, **options)
    except TypeError as e:
        raise KinmergeError(f"bad options for evaluator {kind!r}: {e}", where="evaluator options",
                            fix="see the evaluator's docstring for its options") from None


def model_dir_scorer(kind: str, path: str | Path, **options) -> Callable[[ModelLike], float]:
    """f(model) -> the evaluator's one score (a directory or in-memory weights)."""
    evaluator = make_evaluator(kind, path, **options)

    def score(model: ModelLike) -> float:
        return evaluator(model)[evaluator.name]
    return score


@with_threads("matmul")
def evaluate_model(model: ModelLike, evaluators: list[Evaluator], *,
                   device: str | None = None) -> dict[str, float]:
    """All scores of `model`, loaded once on `device` and shared by the evaluators (each runs
    on that device). device None: the evaluators' own, which must then agree."""
    if not evaluators:
        return {}
    loaded = load_model(model, device or _common_device(evaluators))
    scores: dict[str, float] = {}
    for ev in evaluators:
        scores.update(ev(loaded))
    log.info("scored %s: %s", _label(model), " ".join(f"{k}={v:.4f}" for k, v in scores.items()))
    return scores


def _common_device(evaluators: list[Evaluator]) -> str:
    devices = {str(getattr(ev, "device", "cpu")) for ev in evaluators}
    if len(devices) > 1:
        raise KinmergeError(f"the evaluators ask for different devices: {sorted(devices)}",
                            where="evaluate_model",
                            fix="pass device= to score the model once on one device")
    return devices.pop()


def _label(model: ModelLike) -> str:
    return str(model) if isinstance(model, (str, Path)) else type(model).__name__
