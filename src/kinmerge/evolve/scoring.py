"""Adapters from evolve.yml tasks to scorers of an in-memory candidate.

`exact_match` is greedy generation over a JSONL file of {"prompt", "answer"} lines (the zoo's
task format), batched with left padding: the fraction of prompts whose continuation, up to
the end-of-sequence token, is exactly the answer. It takes the model object, not a directory,
so candidates are never written to disk. (Kept here until `kinmerge.evaluate` offers the same
in-memory entry point; then this delegates to it.)
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from kinmerge.errors import KinmergeError
from kinmerge.evolve.config import LmEvalSpec, TaskSpec

BATCH = 256


def builtin_scorer(task: TaskSpec, split_file: Callable) -> Callable:
    """f(candidate, split) -> score for one `tasks:` entry of evolve.yml."""
    if task.evaluator != "exact_match":
        raise KinmergeError(f"unknown evaluator {task.evaluator!r} for task {task.name!r}",
                            where="fitness.tasks", fix="use exact_match, lm_eval or function")
    opts = dict(task.options)
    limit, max_new = opts.pop("max_examples", None), opts.pop("max_new_tokens", None)
    if opts:
        raise KinmergeError(f"unknown options {sorted(opts)} for exact_match",
                            where=f"fitness.tasks[{task.name}].options",
                            fix="known: max_examples, max_new_tokens")

    def score(candidate, split: str) -> float:
        examples = _examples(split_file(task, split), limit)
        return exact_match(candidate.model, _tokenizer(str(candidate.tokenizer_dir)),
                           examples, max_new)

    return score


@lru_cache(maxsize=32)
def _examples(path: str, limit: int | None) -> tuple[tuple[str, str], ...]:
    p = Path(path)
    if not p.exists():
        raise KinmergeError(f"task file not found: {p}", where="fitness.tasks",
                            fix="check the path (relative to the working directory)")
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return tuple((r["prompt"], str(r["answer"])) for r in rows[:limit])


@lru_cache(maxsize=8)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"  # generation continues every row from its last prompt token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def exact_match(model: torch.nn.Module, tok, examples: tuple[tuple[str, str], ...],
                max_new_tokens: int | None = None) -> float:
    """Fraction of (prompt, answer) pairs the model completes exactly (greedy)."""
    if not examples:
        return 0.0
    max_new = max_new_tokens or max(len(tok(a, add_special_tokens=False).input_ids)
                                    for _, a in examples) + 1
    right = 0
    for i in range(0, len(examples), BATCH):
        chunk = examples[i:i + BATCH]
        enc = tok([p for p, _ in chunk], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        texts = tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=False)
        for text, (_, answer) in zip(texts, chunk):
            right += text.split(tok.eos_token)[0].replace(tok.pad_token, "") == answer
    return right / len(examples)


def lm_eval_scorer(task: LmEvalSpec) -> Callable:
    raise KinmergeError("lm-eval tasks are not wired into evolve yet", where="fitness.lm_eval",
                        fix="use fitness.tasks (exact_match) or fitness.function")
