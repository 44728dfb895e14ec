"""The one fitness interface of evolve, breed and greedy soup.

A `Fitness` scores a `Candidate` on a split ("search": steers decisions; "heldout": reported
only) and combines the scores into the one number the search maximises. `TaskFitness` is the
`fitness:` block of evolve.yml / breed.yml / soup.yml; `as_fitness` turns a user's callable
into one. User functions have one signature everywhere:

    def f(candidate: Candidate, split: str) -> float | dict[str, float]

The older breeding form f(model_dir) still works, with a DeprecationWarning: it is called
with `candidate.path`.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, runtime_checkable

from kinmerge.errors import KinmergeError, short_repr
from kinmerge.evaluate.candidate import Candidate
from kinmerge.evaluate.tasks import FitnessSpec, import_callable, weighted_mean

log = logging.getLogger(__name__)
Split = Literal["search", "heldout"]
UserFunction = Callable[[Candidate, str], "float | dict[str, float]"]
OLD_FORM = ("fitness functions now take (candidate, split); f(model_dir) is deprecated: "
            "use candidate.path (see docs/migration.md)")


@runtime_checkable
class Fitness(Protocol):
    """Scores of a candidate on a split, and their combination (higher is better)."""

    def scores(self, candidate: Candidate, split: Split) -> dict[str, float]: ...

    def combine(self, scores: Mapping[str, float]) -> float: ...


class TaskFitness:
    """The fitness a `fitness:` block describes: weighted mean of its task scores.

    batch_size: the built-in evaluators' batch (their default unless given).
    """

    def __init__(self, spec: FitnessSpec, *, batch_size: int | None = None):
        from kinmerge.evaluate.scorers import builtin_scorer, lm_eval_scorer

        self.spec = spec
        self.weights: dict[str, float] = {}
        self._scorers: list[tuple[str, Callable]] = []
        for t in spec.tasks:
            self._add(t.name, t.weight, builtin_scorer(t, batch_size))
        for t in spec.lm_eval:
            self._add(t.task, t.weight, lm_eval_scorer(t))
        if spec.function:
            self._add("function", 1.0, user_function(import_callable(spec.function)))

    def _add(self, name: str, weight: float, fn: Callable) -> None:
        self.weights[name] = weight
        self._scorers.append((name, fn))

    def scores(self, candidate: Candidate, split: Split) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, fn in self._scorers:
            got = fn(candidate, split)
            if isinstance(got, dict):  # a function may report several named scores
                self.weights.update({k: self.weights[name] for k in got if k not in self.weights})
                out.update(numbers(got, candidate))
            else:
                out[name] = number(got, name, candidate)
        return out

    def combine(self, scores: Mapping[str, float]) -> float:
        """Weighted mean of the task scores (the value the search maximises)."""
        return weighted_mean(dict(scores), self.weights)


class FunctionFitness:
    """A user's callable as a Fitness: one score "function", or the named scores it returns,
    combined by their plain mean."""

    def __init__(self, fn: Callable):
        self.fn = user_function(fn)

    def scores(self, candidate: Candidate, split: Split) -> dict[str, float]:
        got = self.fn(candidate, split)
        if isinstance(got, dict):
            return numbers(got, candidate)
        return {"function": number(got, "function", candidate)}

    def combine(self, scores: Mapping[str, float]) -> float:
        return weighted_mean(dict(scores), {})


class EvaluatorFitness:
    """A kinmerge.evaluate evaluator (evaluator(model) -> {name: score}) as a Fitness: it
    scores the candidate's own module, on any split; the plain mean combines its scores."""

    def __init__(self, evaluator: Any):
        self.evaluator = evaluator

    def scores(self, candidate: Candidate, split: Split) -> dict[str, float]:
        return numbers(self.evaluator(candidate), candidate)

    def combine(self, scores: Mapping[str, float]) -> float:
        return weighted_mean(dict(scores), {})


def number(value: Any, name: str, candidate: Any) -> float:
    """A score as a float; a value that is not a number is one error naming the score and
    the candidate. NaN passes: each search has its policy for it (evolve: a failed trial;
    breed and soup: an error naming the model)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            hasattr(value, "__float__") and not isinstance(value, (str, bytes))):
        raise KinmergeError(f"the fitness returned {short_repr(value)} "
                            f"({type(value).__name__}) as score {name[:80]!r} of "
                            f"{describe(candidate)}, not a number", where="fitness",
                            fix="return a float, or a dict of named floats")
    return float(value)


def numbers(scores: Any, candidate: Any) -> dict[str, float]:
    return {str(k): number(v, str(k), candidate) for k, v in scores.items()}


def describe(candidate: Any) -> str:
    """A candidate in words: its folder, else its merge recipe's models."""
    path = getattr(candidate, "path", None)
    if path is not None:
        return f"model {path}"
    plan = getattr(getattr(candidate, "merged", None), "plan", None)
    recipe = getattr(plan, "recipe", None)
    if recipe is not None:
        return f"the {recipe.merge_method} merge of {', '.join(recipe.model_refs())}"
    return "a candidate"


def check_finite(fitness: float, candidate: Any, split: str) -> float:
    """`fitness`, or one error naming the candidate when it is NaN or infinite (breed and
    soup cannot rank a NaN: it compares false with everything)."""
    if not math.isfinite(fitness):
        raise KinmergeError(f"the fitness of {describe(candidate)} on the {split} split is "
                            f"{fitness!r}", where="fitness",
                            fix="check the fitness function or the task files on this model; "
                                "a model holding NaN weights scores NaN too")
    return fitness


def as_fitness(obj: Any) -> Fitness:
    """A Fitness from a Fitness, a FitnessSpec (or its dict), an evaluator, or a user's
    callable f(candidate, split)."""
    from kinmerge.evaluate.base import Evaluator

    if isinstance(obj, Fitness):
        return obj
    if isinstance(obj, (FitnessSpec, dict)):
        return TaskFitness(FitnessSpec.model_validate(obj))
    if isinstance(obj, Evaluator):
        return EvaluatorFitness(obj)
    if callable(obj):
        return FunctionFitness(obj)
    raise TypeError(f"not a fitness: {type(obj).__name__} (give a Fitness, a fitness spec, "
                    "or a function f(candidate, split))")


def user_function(fn: Callable) -> Callable[[Candidate, str], Any]:
    """`fn` called as f(candidate, split); the one-argument f(model_dir) form is adapted
    (DeprecationWarning once, here) and called with the candidate's folder."""
    if not _takes_one_argument(fn):
        return fn
    warnings.warn(OLD_FORM, DeprecationWarning, stacklevel=3)
    return functools.partial(_call_old_form, fn)


def _call_old_form(fn: Callable, candidate: Candidate, split: str) -> Any:
    if candidate.path is None:  # a merge in memory has no folder to give
        raise TypeError(f"{OLD_FORM}; a merge in memory has no model_dir")
    return fn(Path(candidate.path))


def _takes_one_argument(fn: Callable) -> bool:
    """True for the old form: callable with one positional argument but not with two."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: assume the new form
        return False
    try:
        sig.bind(None, None)
        return False
    except TypeError:
        pass
    try:
        sig.bind(None)
        return True
    except TypeError:
        return False
