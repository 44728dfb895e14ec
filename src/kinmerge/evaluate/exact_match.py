"""Exact match of greedy generations against answers, over a JSONL of prompt/answer pairs.

>>> em = ExactMatch("zoo/tasks/add/heldout.jsonl", name="add")               # doctest: +SKIP
>>> em("zoo/add")                                                           # doctest: +SKIP
{'add': 0.995}
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from kinmerge.evaluate.base import batches, progress, read_jsonl
from kinmerge.evaluate.model import ModelLike, load_model

log = logging.getLogger(__name__)


class ExactMatch:
    """Fraction of prompts whose greedy continuation, cut at `stop`, equals the answer.

    The continuation ends at the end-of-sequence token, at the first `stop` string, or after
    `max_new_tokens` (default: the longest answer's length in tokens plus one); surrounding
    whitespace is ignored. Prompts are left padded and generated `batch_size` at a time.
    """

    def __init__(self, path: str | Path, *, name: str = "exact_match",
                 max_new_tokens: int | None = None, stop: str | None = "\n",
                 batch_size: int = 64, max_examples: int | None = None, device: str = "cpu",
                 progress: bool = False):
        self.path, self.name = Path(path), name
        self.rows = read_jsonl(self.path, ("prompt", "answer"), max_examples)
        self.max_new_tokens, self.stop = max_new_tokens, stop
        self.batch_size, self.device, self.progress = batch_size, device, progress

    def __call__(self, model: ModelLike) -> dict[str, float]:
        answers = self.generate(model)
        right = sum(a == str(r["answer"]).strip() for a, r in zip(answers, self.rows))
        return {self.name: right / len(self.rows)}

    @torch.no_grad()
    def generate(self, model: ModelLike) -> list[str]:
        """The model's answer to every prompt (cut at the stop string, stripped)."""
        m = load_model(model, self.device)
        tok = m.tokenizer
        limit = self.max_new_tokens or 1 + max(
            len(tok(str(r["answer"]), add_special_tokens=False).input_ids) for r in self.rows)
        out: list[str] = []
        with progress(self.progress, f"exact match {self.name}", len(self.rows)) as advance:
            for chunk in batches(self.rows, self.batch_size):
                enc = tok([r["prompt"] for r in chunk], return_tensors="pt", padding=True)
                enc = {k: v.to(m.device) for k, v in enc.items()}
                gen = m.module.generate(**enc, max_new_tokens=limit, do_sample=False,
                                        pad_token_id=tok.pad_token_id,
                                        eos_token_id=tok.eos_token_id)
                texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:],
                                         skip_special_tokens=True)
                out += [self._cut(t) for t in texts]
                advance(len(chunk))
        return out

    def _cut(self, text: str) -> str:
        if self.stop:
            text = text.split(self.stop, 1)[0]
        return text.strip()
