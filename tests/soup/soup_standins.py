"""A fitness for soup tests (importable by name from soup.yml): closeness of a model's delta
from $SOUP_TEST_BASE to the mean delta of the models in $SOUP_TEST_GOOD."""
from __future__ import annotations

import os

import numpy as np
import torch


def _delta(tensors: dict, base: dict) -> np.ndarray:
    return np.concatenate([(tensors[k].double() - base[k].double()).numpy().ravel()
                           for k in sorted(base)])


def closeness(candidate, split: str) -> float:
    from kinmerge.evaluate import read_dir

    base = read_dir(os.environ["SOUP_TEST_BASE"]).tensors
    good = [read_dir(p).tensors for p in os.environ["SOUP_TEST_GOOD"].split(os.pathsep)]
    target = np.mean([_delta(g, base) for g in good], axis=0)
    d = _delta({k: v.to(torch.float64) for k, v in candidate.tensors.items()}, base) - target
    value = 1.0 / (1.0 + 10.0 * float(np.sqrt(d @ d)))
    return value if split == "search" else value / 2  # a held-out split that differs
