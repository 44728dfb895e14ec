"""Adapters from evolve.yml tasks to scorers of an in-memory candidate.

Built-in tasks are `kinmerge.evaluate` evaluators (one implementation of exact match for the
whole project). The candidate's transformers module is handed over as a `LoadedModel`, so
what is scored is the module evolution built, DFS scale hooks included, never written to disk.
"""
from __future__ import annotations

from typing import Callable

from kinmerge.errors import KinmergeError
from kinmerge.evaluate import LoadedModel, make_evaluator
from kinmerge.evaluate.model import tokenizer
from kinmerge.evolve.config import LmEvalSpec, TaskSpec

BATCH = 256  # the zoo's prompts are short: larger batches generate faster on a CPU


def builtin_scorer(task: TaskSpec, split_file: Callable) -> Callable:
    """f(candidate, split) -> score for one `tasks:` entry of evolve.yml."""
    options = {"batch_size": BATCH, **task.options, "name": task.name}
    evaluators: dict[str, object] = {}  # split -> evaluator, its prompt file read once

    def evaluator(split: str):
        if split not in evaluators:
            evaluators[split] = make_evaluator(task.evaluator, split_file(task, split),
                                               **options)
        return evaluators[split]

    for split in ("search",):  # bad evaluator names and options fail before any trial
        evaluator(split)

    def score(candidate, split: str) -> float:
        loaded = LoadedModel(candidate.model, tokenizer(candidate.tokenizer_dir))
        return evaluator(split)(loaded)[task.name]

    return score


def lm_eval_scorer(task: LmEvalSpec) -> Callable:
    raise KinmergeError("lm-eval tasks are not wired into evolve yet", where="fitness.lm_eval",
                        fix="use fitness.tasks (exact_match) or fitness.function")
