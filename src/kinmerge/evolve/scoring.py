"""Adapters from evolve.yml tasks to scorers of an in-memory candidate.

Built-in tasks are `kinmerge.evaluate` evaluators (one implementation of exact match for the
whole project); `lm_eval` tasks go through its lm-evaluation-harness adapter. The candidate's transformers module is handed over as a `LoadedModel`, so
what is scored is the module evolution built, DFS scale hooks included, never written to disk.
"""
from __future__ import annotations

from typing import Callable

from kinmerge.errors import KinmergeError
from kinmerge.evaluate import LoadedModel, make_evaluator
from kinmerge.evaluate.model import tokenizer
from kinmerge.evaluate.tasks import TaskSpec, task_file
from kinmerge.evolve.config import LmEvalSpec

BATCH = 256  # the zoo's prompts are short: larger batches generate faster on a CPU


def builtin_scorer(task: TaskSpec) -> Callable:
    """f(candidate, split) -> score for one `tasks:` entry of evolve.yml."""
    options = {"batch_size": BATCH, **task.options, "name": task.name}
    evaluators: dict[str, object] = {}  # split -> evaluator, its prompt file read once

    def evaluator(split: str):
        if split not in evaluators:
            evaluators[split] = make_evaluator(task.evaluator, task_file(task, split),
                                               **options)
        return evaluators[split]

    for split in ("search",):  # bad evaluator names and options fail before any trial
        evaluator(split)

    def score(candidate, split: str) -> float:
        loaded = LoadedModel(candidate.model, tokenizer(candidate.tokenizer_dir))
        return evaluator(split)(loaded)[task.name]

    return score


def lm_eval_scorer(task: LmEvalSpec) -> Callable:
    """f(candidate, split) -> `task`'s `metric` from lm-evaluation-harness (`heldout_task`,
    if given, for the held-out split), on the candidate's own module."""
    from kinmerge.evaluate.lm_eval import LmEval, require_lm_eval

    require_lm_eval()
    names = {"search": task.task, "heldout": task.heldout_task or task.task}
    evaluators = {split: LmEval([name], include_path=task.include_path, limit=task.limit,
                                keep_wrapper=False) for split, name in names.items()}

    def score(candidate, split: str) -> float:
        loaded = LoadedModel(candidate.model, tokenizer(candidate.tokenizer_dir))
        scores = evaluators[split](loaded)
        key = f"{names[split]}/{task.metric}"
        if key not in scores:
            raise KinmergeError(f"lm-eval task {names[split]!r} reported no {task.metric!r} "
                                f"(it reported {sorted(scores)})", where="fitness.lm_eval",
                                fix="set `metric:` to one of the reported metrics")
        return scores[key]

    return score
