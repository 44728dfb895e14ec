"""Scoring by log-likelihood: multiple choice (accuracy) and perplexity on a text file.

>>> MultipleChoice("zoo/tasks/add/choices.jsonl", name="add_mc")("zoo/add")   # doctest: +SKIP
{'add_mc': 0.99}
>>> Perplexity("zoo/tasks/text.txt")("zoo/base")                             # doctest: +SKIP
{'perplexity': 1.9}
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.base import batches, progress, read_jsonl, read_task_lines
from kinmerge.evaluate.model import LoadedModel, ModelLike, load_model


@torch.no_grad()
def continuation_logprobs(m: LoadedModel, pairs: list[tuple[str, str]],
                          batch_size: int) -> list[tuple[float, int]]:
    """(sum of log p(continuation | context), its token count) for each pair.

    Context and continuation are tokenized apart (the context with the tokenizer's special
    tokens) and concatenated, as lm-eval does, so the continuation's tokens are exact.
    Sequences are right padded; a causal model never attends to the padding after them.
    """
    tok = m.tokenizer
    out: list[tuple[float, int]] = []
    for chunk in batches(pairs, batch_size):
        seqs, spans = [], []
        for ctx, cont in chunk:
            c = tok(ctx).input_ids
            if not c:  # a tokenizer without <s>: condition the first token on end-of-text
                c = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
            x = tok(cont, add_special_tokens=False).input_ids
            seqs.append(c + x)
            spans.append((len(c), len(c) + len(x)))
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
        logp = torch.log_softmax(m.module(input_ids=ids.to(m.device)).logits.float(), -1)
        for i, (a, b) in enumerate(spans):
            targets = ids[i, a:b].to(m.device)
            # logits at position t predict token t + 1
            lp = logp[i, a - 1:b - 1].gather(-1, targets[:, None]).sum().item()
            out.append((lp, b - a))
    return out


class MultipleChoice:
    """Accuracy of picking the choice with the highest log-likelihood after the prompt.

    JSONL rows: {"prompt": str, "choices": [str, ...], "answer": index or the right choice}.
    """

    def __init__(self, path: str | Path, *, name: str = "multiple_choice",
                 batch_size: int = 64, max_examples: int | None = None, device: str = "cpu",
                 progress: bool = False):
        self.path, self.name = Path(path), name
        self.rows = read_jsonl(self.path, ("prompt", "choices", "answer"), max_examples)
        self.gold = [self._gold(i, r) for i, r in enumerate(self.rows, 1)]
        self.batch_size, self.device, self.progress = batch_size, device, progress

    def _gold(self, line: int, row: dict) -> int:
        a = row["answer"]
        if isinstance(a, int) and 0 <= a < len(row["choices"]):
            return a
        if isinstance(a, str) and a in row["choices"]:
            return row["choices"].index(a)
        raise KinmergeError(f"answer {a!r} is not one of the choices", where=f"{self.path}:{line}",
                            fix="give the answer as an index into choices or as one of them")

    def __call__(self, model: ModelLike) -> dict[str, float]:
        m = load_model(model, self.device)
        pairs = [(r["prompt"], c) for r in self.rows for c in r["choices"]]
        with progress(self.progress, f"multiple choice {self.name}", len(pairs)) as advance:
            scores = continuation_logprobs(m, pairs, self.batch_size)
            advance(len(pairs))
        right, k = 0, 0
        for row, gold in zip(self.rows, self.gold):
            n = len(row["choices"])
            lps = [lp for lp, _ in scores[k:k + n]]
            right += max(range(n), key=lps.__getitem__) == gold
            k += n
        return {self.name: right / len(self.rows)}


class Perplexity:
    """exp(mean negative log-likelihood per token). Lower is better.

    A text file: each non-empty line is one document, its first token predicted from the
    beginning-of-sequence token. A JSONL file of {"prompt", "answer"} rows: the perplexity of
    the answers given their prompts (the right measure for models trained on answers only,
    like the zoo's, which never learned to predict random operands).
    """

    def __init__(self, path: str | Path, *, name: str = "perplexity", batch_size: int = 64,
                 max_examples: int | None = None, device: str = "cpu", progress: bool = False):
        self.path, self.name = Path(path), name
        if self.path.suffix == ".jsonl":
            rows = read_jsonl(self.path, ("prompt", "answer"), max_examples)
            self.pairs = [(r["prompt"], str(r["answer"])) for r in rows]
        else:
            lines = [ln for ln in read_task_lines(self.path) if ln.strip()]
            self.pairs = [("", ln) for ln in lines[:max_examples]]
            if not self.pairs:
                raise KinmergeError(f"no text in {self.path}", where=str(self.path))
        self.batch_size, self.device, self.progress = batch_size, device, progress

    def __call__(self, model: ModelLike) -> dict[str, float]:
        m = load_model(model, self.device)
        with progress(self.progress, f"perplexity {self.name}", len(self.pairs)) as advance:
            scores = continuation_logprobs(m, self.pairs, self.batch_size)
            advance(len(self.pairs))
        nll = -sum(lp for lp, _ in scores) / sum(n for _, n in scores)
        return {self.name: math.exp(nll)}
