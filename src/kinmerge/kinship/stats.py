"""Sufficient statistics of k delta vectors, accumulated chunk by chunk in float64.

For vectors x_1..x_k over the same n coordinates we keep
  n, the mean vector mu (k,), the centred co-moments C_ij = sum (x_i - mu_i)(x_j - mu_j) (k, k),
  and the squared distances D_ij = sum (x_i - x_j)^2 (k, k).
Every metric of docs/concepts/kinship-metrics.md is a function of these (see metrics.py):
  sum x_i x_j = C_ij + n mu_i mu_j,  sum x_i = n mu_i,  ed_ij = sqrt(D_ij).

Why centred moments and not the raw sums n, sum x, sum x^2, sum xy: Pearson from raw sums is
n sum xy - sum x sum y, which cancels catastrophically when the deltas have a large mean (a
norm shifted by a constant); the centred form does not. Why D directly: sum x^2 - 2 sum xy +
sum y^2 cancels when the two models are close, which is exactly when kinship is interesting.
Chunks are merged with the pairwise update of Chan, Golub & LeVeque (1979).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Moments:
    """Statistics of k vectors over n shared coordinates (all float64)."""

    n: int
    mean: np.ndarray  # (k,)
    comoment: np.ndarray  # (k, k) centred: sum (x_i - mean_i)(x_j - mean_j)
    sqdist: np.ndarray  # (k, k) sum (x_i - x_j)^2

    @property
    def k(self) -> int:
        return len(self.mean)

    @classmethod
    def zeros(cls, k: int) -> "Moments":
        return cls(0, np.zeros(k), np.zeros((k, k)), np.zeros((k, k)))

    def gram(self) -> np.ndarray:
        """Raw inner products sum x_i x_j, (k, k)."""
        return self.comoment + self.n * np.outer(self.mean, self.mean)

    def __add__(self, other: "Moments") -> "Moments":
        """Statistics of the two coordinate sets joined (Chan et al.'s pairwise update)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        d = other.mean - self.mean  # (k,)
        mean = self.mean + d * (other.n / n)
        comoment = self.comoment + other.comoment + np.outer(d, d) * (self.n * other.n / n)
        return Moments(n, mean, comoment, self.sqdist + other.sqdist)


def total(parts) -> Moments:
    """Sum of an iterable of Moments (at least one)."""
    it = iter(parts)
    acc = next(it)
    for m in it:
        acc = acc + m
    return acc


def chunk_moments(x: torch.Tensor, scratch: torch.Tensor | None = None) -> Moments:
    """Moments of one chunk; `x` is (k, m) float64 and is modified in place; `scratch`, if
    given, is a float64 buffer of at least m elements for the pairwise differences.

    Shifted-data algorithm: subtract each row's first value before summing, so a constant
    row gives exactly zero co-moment and a row far from zero loses no digits.
    """
    k, m = x.shape
    if m == 0:
        return Moments.zeros(k)
    # squared distances first, on the unshifted rows
    sq = np.zeros((k, k))
    diff = scratch[:m] if scratch is not None else torch.empty(m, dtype=torch.float64)
    for i in range(k):
        for j in range(i + 1, k):
            torch.sub(x[i], x[j], out=diff)
            sq[i, j] = sq[j, i] = float(torch.dot(diff, diff))
    shift = x[:, 0].clone()  # (k,)
    x.sub_(shift[:, None])
    s = x.sum(dim=1)  # (k,)
    g = x @ x.T  # (k, k)
    comoment = (g - torch.outer(s, s) / m).numpy()
    mean = (shift + s / m).numpy()
    # symmetric by construction; make it exactly so (matmul may round i,j and j,i differently)
    comoment = (comoment + comoment.T) / 2
    return Moments(m, mean.copy(), comoment, sq)
