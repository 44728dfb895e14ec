"""Synthetic algorithmic tasks the zoo is trained and scored on.

Every example is a (prompt, answer) pair of plain characters. A prompt starts with one
upper-case tag naming the task and ends with "="; the model continues with the answer and then
its end-of-sequence token. Generators take a `random.Random`, so a seed fixes every example.

    add   A123+456=  -> 9750   zero-padded operands; the sum (one digit longer) written least
                               significant digit first, so carries flow in generation order
    rev   Rkqzb=     -> bzqk   reverse a lower-case word
    copy  Ckqzb=     -> kqzb   copy the word
    sort  S3172=     -> 1237   sort digits
    shift Hkqzb=     -> lrac   each letter one step on in the alphabet (z -> a)
    upper Ukqzb=     -> KQZB   upper-case the word

Pretraining teaches every format on short inputs (2-digit addition, words of 2-7 letters);
each skill an expert is fine-tuned and scored on is the longer version (3-digit addition,
words of 8-9), which the base cannot do but is a small step away from.
"""
from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

Example = tuple[str, str]
Generator = Callable[[random.Random], Example]
LETTERS = string.ascii_lowercase


def make_add(digits: int) -> Generator:
    def gen(rng: random.Random) -> Example:
        a, b = rng.randrange(10**digits), rng.randrange(10**digits)
        return f"A{a:0{digits}d}+{b:0{digits}d}=", f"{a + b:0{digits + 1}d}"[::-1]
    return gen


def _word(rng: random.Random, lo: int, hi: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def make_rev(lo: int, hi: int) -> Generator:
    def gen(rng: random.Random) -> Example:
        w = _word(rng, lo, hi, LETTERS)
        return f"R{w}=", w[::-1]
    return gen


def make_copy(lo: int, hi: int) -> Generator:
    def gen(rng: random.Random) -> Example:
        w = _word(rng, lo, hi, LETTERS)
        return f"C{w}=", w
    return gen


def make_sort(lo: int, hi: int) -> Generator:
    def gen(rng: random.Random) -> Example:
        w = _word(rng, lo, hi, string.digits)
        return f"S{w}=", "".join(sorted(w))
    return gen


def make_shift(lo: int, hi: int) -> Generator:
    def gen(rng: random.Random) -> Example:
        w = _word(rng, lo, hi, LETTERS)
        return f"H{w}=", "".join(LETTERS[(LETTERS.index(c) + 1) % 26] for c in w)
    return gen


def make_upper(lo: int, hi: int) -> Generator:
    def gen(rng: random.Random) -> Example:
        w = _word(rng, lo, hi, LETTERS)
        return f"U{w}=", w.upper()
    return gen


# Every skill a zoo can hold: (the long version experts learn and are scored on, the short
# version the base is pretrained on). A zoo config names the ones it uses.
CATALOGUE: dict[str, tuple[Generator, Generator]] = {
    "add": (make_add(3), make_add(2)),
    "rev": (make_rev(8, 9), make_rev(2, 7)),
    "sort": (make_sort(8, 9), make_sort(2, 7)),
    "copy": (make_copy(8, 9), make_copy(2, 9)),
    "shift": (make_shift(8, 9), make_shift(2, 7)),
    "upper": (make_upper(8, 9), make_upper(2, 7)),
}

# The default zoo's skills (scored, in this order) and pretraining mixture (in this order).
DEFAULT_SKILLS = ("add", "rev", "sort", "copy")
DEFAULT_PRETRAIN = ("add", "rev", "copy", "sort")
SKILLS: dict[str, Generator] = {k: CATALOGUE[k][0] for k in DEFAULT_SKILLS}
PRETRAIN: dict[str, Generator] = {k: CATALOGUE[k][1] for k in DEFAULT_PRETRAIN}


def check_skills(names: tuple[str, ...], where: str) -> None:
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        from kinmerge.errors import KinmergeError
        raise KinmergeError(f"unknown zoo skill(s) {', '.join(unknown)}", where=where,
                            fix=f"choose among {', '.join(CATALOGUE)}")


@dataclass(frozen=True)
class Mixture:
    """Draw from `main` with probability 1 - replay, else uniformly from `general`.

    Prompts in `reserved` (the evaluation splits) are redrawn, so scores are on unseen prompts.
    """

    main: tuple[Generator, ...]
    general: tuple[Generator, ...] = ()
    replay: float = 0.0
    reserved: frozenset[str] = frozenset()

    def sample(self, rng: random.Random) -> Example:
        while True:
            if self.general and rng.random() < self.replay:
                ex = rng.choice(self.general)(rng)
            else:
                ex = rng.choice(self.main)(rng)
            if ex[0] not in self.reserved:
                return ex


def eval_splits(skill: str, seed: int, n: int) -> dict[str, list[Example]]:
    """Disjoint `search` and `heldout` splits of `n` distinct examples each for `skill`."""
    rng = random.Random(f"eval:{skill}:{seed}")
    seen: dict[str, str] = {}
    while len(seen) < 2 * n:
        p, a = CATALOGUE[skill][0](rng)
        seen.setdefault(p, a)
    items = list(seen.items())
    return {"search": items[:n], "heldout": items[n:]}


def write_jsonl(path: Path, examples: list[Example]) -> Path:
    """One {"prompt", "answer"} object per line (the format of the exact-match evaluator)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for p, a in examples:
            f.write(json.dumps({"prompt": p, "answer": a}) + "\n")
    return path


def write_choices(path: Path, examples: list[Example], seed: int, k: int = 4) -> Path:
    """A multiple-choice version of `examples`: the answer among k-1 one-character corruptions."""
    rng = random.Random(f"choices:{seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for p, a in examples:
            alphabet = string.digits if a.isdigit() else LETTERS
            choices = {a}
            while len(choices) < k:
                i = rng.randrange(len(a))
                choices.add(a[:i] + rng.choice(alphabet) + a[i + 1:])
            opts = sorted(choices)
            f.write(json.dumps({"prompt": p, "choices": opts, "answer": opts.index(a)}) + "\n")
    return path
