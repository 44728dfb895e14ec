"""The `fitness:` block of evolve.yml, breed.yml and soup.yml (one spec for all three):
built-in tasks (a named evaluator over a search file, which steers decisions, and an optional
held-out file, reported only, with a weight), lm-evaluation-harness tasks, a user function.
"""
from __future__ import annotations

import importlib
import re
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kinmerge.errors import KinmergeError
from kinmerge.io.configfile import MAX_MODELS, Count, Weight

MAX_TASKS = 100  # tasks of one fitness block
# "package.module:callable": dotted identifiers, a colon, an identifier
FUNCTION = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


class TaskSpec(BaseModel):
    """One built-in task: a kinmerge.evaluate evaluator over JSONL prompt/answer files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    evaluator: str = "exact_match"
    search: str  # prompts that steer the search (evolve) or the breeding
    heldout: str | None = None  # prompts never used for decisions; for the final report
    weight: Weight = 1.0
    options: dict[str, Any] = {}  # passed to the evaluator (max_examples, max_new_tokens, ...)


class LmEvalSpec(BaseModel):
    """One lm-evaluation-harness task and the metric taken from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str  # scored during the search
    heldout_task: str | None = None  # scored for the final report (default: `task`)
    metric: str = "acc"
    weight: Weight = 1.0
    limit: Count | None = None
    include_path: str | None = None  # folder of local task YAMLs


class FitnessSpec(BaseModel):
    """Fitness = weighted mean of the task scores. `function` is "package.module:callable",
    called as f(candidate, split) -> float | {name: float} (see kinmerge.evaluate.fitness)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: Annotated[list[TaskSpec], Field(max_length=MAX_TASKS)] = []
    lm_eval: Annotated[list[LmEvalSpec], Field(max_length=MAX_TASKS)] = []
    function: str | None = None

    @field_validator("function")
    @classmethod
    def _function(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "/" in v or "\\" in v or v.partition(":")[0].endswith(".py"):
            raise ValueError(
                f"{v[:100]!r} is a file path, not a module name: put the file's folder on "
                "PYTHONPATH and write module:function (my_fitness.py -> my_fitness:score)")
        if not FUNCTION.fullmatch(v):
            raise ValueError(f"{v[:100]!r} is not of the form package.module:callable")
        return v

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
    if not FUNCTION.fullmatch(target):
        raise KinmergeError(f"fitness function {target[:100]!r} is not of the form "
                            "package.module:callable", where="fitness.function",
                            fix="write module:function, the module importable here (a file "
                                "path is not a module name: put its folder on PYTHONPATH)")
    mod, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except Exception as e:  # ImportError, AttributeError, or the module's own error
        raise KinmergeError(f"cannot import fitness function {target!r}: "
                            f"{type(e).__name__}: {str(e)[:200]}", where="fitness.function",
                            fix="give it as package.module:callable, importable here") from e
    if not callable(fn):
        raise KinmergeError(f"fitness function {target!r} is a {type(fn).__name__}, not a "
                            "callable", where="fitness.function",
                            fix="name a function f(candidate, split)")
    return fn


def check_fitness(spec: FitnessSpec, models: list[str]) -> None:
    """Everything a fitness needs that can fail before a search starts: every task file read
    and checked (both splits, through the evaluators' one reader), the function imported,
    every lm-eval task name found (both splits), and, when built-in or lm-eval tasks will
    run, the tokenizer of each of `models` (the folders whose tokenizer the candidates use)
    loaded."""
    from kinmerge.evaluate.evaluators import make_evaluator
    from kinmerge.evaluate.build import tokenizer
    from kinmerge.io.hub import resolve_model
    from kinmerge.io.refs import split_lora

    for t in spec.tasks:
        for split in ("search", "heldout") if t.heldout else ("search",):
            make_evaluator(t.evaluator, task_file(t, split), **{**t.options, "name": t.name})
    if spec.function:
        import_callable(spec.function)
    if spec.lm_eval:
        from kinmerge.evaluate.lm_eval import check_tasks

        for t in spec.lm_eval:
            check_tasks([t.task, t.heldout_task or t.task], t.include_path)
    if spec.tasks or spec.lm_eval:
        for ref in dict.fromkeys(models):
            tokenizer(resolve_model(split_lora(ref)[0]))


MODELS = Annotated[list[str], Field(max_length=MAX_MODELS)]  # a config's list of models
