"""A plain, deterministic torch training loop for the zoo's tiny Llamas.

The loss is on the answer tokens and the end-of-sequence token only: prompts are random
operands, so predicting them would teach nothing and add noise. Batches are right padded
(a causal model never attends to what comes after), so no attention mask is needed.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Iterator

import torch

from kinmerge.zoo.tasks import Mixture
from kinmerge.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """AdamW with linear warmup, then cosine decay to 0 over `horizon` steps.

    Training may stop before the horizon (`steps` < `horizon`): the base is stopped early on
    purpose, so it knows every task format without mastering the expert skills.
    """

    steps: int
    lr: float
    batch: int = 64
    warmup: int = 50
    horizon: int | None = None
    weight_decay: float = 0.0

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        horizon = self.horizon or self.steps
        frac = min(1.0, (step - self.warmup) / max(1, horizon - self.warmup))
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * frac))


def make_batch(data: Mixture, rng: random.Random, batch: int) -> tuple[torch.Tensor, ...]:
    """(input_ids, labels), both (batch, longest); labels are -100 outside answers."""
    rows, labels = [], []
    for _ in range(batch):
        prompt, answer = data.sample(rng)
        p, a = [BOS_ID] + encode(prompt), encode(answer) + [EOS_ID]
        rows.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(map(len, rows))
    ids = torch.full((batch, width), PAD_ID, dtype=torch.long)
    lab = torch.full((batch, width), -100, dtype=torch.long)
    for i, (r, y) in enumerate(zip(rows, labels)):
        ids[i, :len(r)] = torch.tensor(r)
        lab[i, :len(y)] = torch.tensor(y)
    return ids, lab


@contextlib.contextmanager
def isolated_torch() -> Iterator[None]:
    """Inside: deterministic algorithms on, and torch's global random state free to seed.
    On exit both are as they were (the caller's seed and settings are left alone)."""
    det = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(det, warn_only=warn)


def train(model: torch.nn.Module, data: Mixture, schedule: Schedule, seed: int,
          label: str = "train") -> list[float]:
    """Train `model` in place (see `_train`); torch's global random state is restored after."""
    with torch.random.fork_rng(devices=[]):
        return _train(model, data, schedule, seed, label)


def _train(model: torch.nn.Module, data: Mixture, schedule: Schedule, seed: int,
           label: str = "train") -> list[float]:
    """Train `model` in place on `data`; returns the loss of every step.

    Deterministic given `seed`: batches come from `random.Random(seed)`, and any torch
    randomness (none in a Llama without dropout) from `torch.manual_seed(seed)`.
    """
    torch.manual_seed(seed)
    rng = random.Random(f"{label}:{seed}")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, betas=(0.9, 0.98),
                            weight_decay=schedule.weight_decay)
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(schedule.steps):
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(step)
        ids, lab = make_batch(data, rng, schedule.batch)
        loss = model(input_ids=ids, labels=lab).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == schedule.steps:
            log.info("%s: step %d/%d loss %.4f (%.0fs)", label, step + 1, schedule.steps,
                     sum(losses[-50:]) / len(losses[-50:]), time.perf_counter() - t0)
    model.eval()
    return losses
