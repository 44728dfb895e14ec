"""Scorers of a `Candidate`: a built-in evaluator over a task's prompt files, an
lm-evaluation-harness task. Each is f(candidate, split) -> score, run on the candidate's own
module (DFS scale hooks included), which is built once per candidate and shared.
"""
from __future__ import annotations

from typing import Callable

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.evaluators import make_evaluator
from kinmerge.evaluate.tasks import LmEvalSpec, TaskSpec, task_file

Scorer = Callable[..., float]


def builtin_scorer(task: TaskSpec, batch_size: int | None = None) -> Scorer:
    """f(candidate, split) -> score for one `tasks:` entry (batch_size: the evaluator's
    default unless given; the task's own `options` win over it)."""
    options = {**({"batch_size": batch_size} if batch_size else {}), **task.options,
               "name": task.name}
    evaluators: dict[str, object] = {}  # split -> evaluator, its prompt file read once

    def evaluator(split: str):
        if split not in evaluators:
            evaluators[split] = make_evaluator(task.evaluator, task_file(task, split),
                                               **options)
        return evaluators[split]

    evaluator("search")  # bad evaluator names and options fail before any model is scored

    def score(candidate, split: str) -> float:
        return evaluator(split)(candidate.loaded())[task.name]

    return score


def lm_eval_scorer(task: LmEvalSpec) -> Scorer:
    """f(candidate, split) -> `task`'s `metric` from lm-evaluation-harness (`heldout_task`,
    if given, for the held-out split)."""
    from kinmerge.evaluate.lm_eval import LmEval, require_lm_eval

    require_lm_eval()
    names = {"search": task.task, "heldout": task.heldout_task or task.task}
    evaluators = {split: LmEval([name], include_path=task.include_path, limit=task.limit,
                                keep_wrapper=False) for split, name in names.items()}

    def score(candidate, split: str) -> float:
        scores = evaluators[split](candidate.loaded())
        key = f"{names[split]}/{task.metric}"
        if key not in scores:
            raise KinmergeError(f"lm-eval task {names[split]!r} reported no {task.metric!r} "
                                f"(it reported {sorted(scores)})", where="fitness.lm_eval",
                                fix="set `metric:` to one of the reported metrics")
        return scores[key]

    return score
