"""The task-vector methods as one composition: sparsify × elect × rescale.

Each method of the family takes the task vectors tau_k = theta_k - theta_0, thins each one
with its sparsify step (skipped where density is 1), with `rescale` scales a thinned vector
back to its untrimmed L1 norm, and adds lambda times the weighted sum of the vectors to the
base: over every entry, or (elect, TIES) only over the entries whose sign agrees with the
elected one; with `normalize`, divided by the weights summed (the agreeing ones' with elect).
The named methods differ only in the step, the election and two defaults, so each is one row
of `ROWS`:

    method             sparsify                                 elect  normalize  rescale
    task_arithmetic    -                                        no     false      -
    ties               trim: the top-k magnitudes (ties.py)     yes    true       false
    dare_linear        drop: Bernoulli (dare.py)                no     false      true
    dare_ties          drop                                     yes    false      true
    della              magprune: rank-weighted drop (della.py)  yes    true       true
    della_linear       magprune                                 no     false      true
    breadcrumbs        band: below the gamma outliers           no     false      false
    breadcrumbs_ties   band (breadcrumbs.py)                    yes    false      false

The rows and the steps' declarations live in `catalog.py` (no torch: `kinmerge methods` and
`validate` read them); this module holds the composition they run. A row's registry entry
follows from it: its parameters (weight, density and the step's own,
normalize, rescale, lambda, int8_mask), `stochastic` (the step draws from the per-tensor
generator), the `topk` option (the step ranks magnitudes), the plan-time check (the step's),
and the zero-weight-sum warning (every row without election, whose normalize divides by the
plain weight sum).

>>> ties([torch.tensor([3., -1.]), torch.tensor([-1., -2.])], torch.zeros(2),
...      weight=[1, 1], density=[1, 1])
tensor([ 3.0000, -1.5000])
>>> breadcrumbs([torch.tensor([9., 1., 3., 2.])], torch.zeros(4), weight=[1],
...             density=[0.5], gamma=[0.25])
tensor([0., 0., 3., 2.])
>>> task_arithmetic([torch.tensor([2., 0.])], torch.tensor([1., 1.]), weight=[-1.0])
tensor([0., 2.])
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from kinmerge.methods.catalog import (BAND, DROP, MAGPRUNE, ROWS, TASK_VECTOR_METHODS,  # noqa: F401
                                      TRIM, Row, Sparsify, zero_weight_sum)
from kinmerge.methods.registry import Param
from kinmerge.methods.sparsify import combine, l1_on_cpu, rescale_l1


def task_vectors(tensors: list[torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """(n_models, *shape): tau_k = theta_k - theta_0."""
    out = torch.empty((len(tensors), *base.shape), dtype=base.dtype, device=base.device)
    for k, t in enumerate(tensors):
        torch.sub(t, base, out=out[k])  # straight into place: no per-model temporaries
    return out


def thin(deltas: torch.Tensor, s: Sparsify, density: list[float], extra: list[list[float]],
         rescale: bool, topk: str, generator: torch.Generator | None) -> torch.Tensor:
    """Each task vector of `deltas` (in place) through the step `s`, then, with `rescale`,
    scaled back to its L1 norm before thinning (mergekit's rule; the DELLA paper divides each
    kept entry by its own keep probability instead). Density 1 keeps every entry, breadcrumbs'
    gamma outliers too, and draws nothing from the generator (as in mergekit)."""
    for k, d in enumerate(density):
        if d >= 1:
            continue
        row = deltas[k]
        # with rescale, the untrimmed L1 norm is taken first, so the step may thin in place
        # (no copy of the row): the same numbers as scaling a thinned copy
        before = l1_on_cpu(row) if rescale else None
        kept = s.step(row, d, *(e[k] for e in extra), topk=topk, generator=generator,
                      inplace=True)
        if rescale:
            kept = rescale_l1(before, kept)
        if kept is not row:
            deltas[k] = kept
    return deltas


@dataclass(frozen=True)
class TaskVectorMerge:
    """A row's merge function: fn(tensors, base, *, weight, [density, step parameters,]
    normalize, [rescale,] lambda_, [topk,] generator) -> tensor, defaults from its params."""

    name: str
    sparsify: Sparsify | None
    elect: bool
    params: tuple[Param, ...]

    def __call__(self, tensors: list[torch.Tensor], base: torch.Tensor, *,
                 generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
        p = self._arguments(kwargs)
        deltas = task_vectors(tensors, base)  # (n_models, *shape)
        s = self.sparsify
        if s is not None:
            thin(deltas, s, p["density"], [p[e.name] for e in s.extra], p["rescale"],
                 p.get("topk", "stable"), generator)
        return combine(deltas, p["weight"], base, elect=self.elect, normalize=p["normalize"],
                       lambda_=p["lambda_"])

    @property
    def __signature__(self) -> inspect.Signature:
        """The keywords the call takes, with the row's defaults (what `help` and the registry
        test read)."""
        P = inspect.Parameter
        out = [P("tensors", P.POSITIONAL_OR_KEYWORD), P("base", P.POSITIONAL_OR_KEYWORD)]
        out += [P(p.arg, P.KEYWORD_ONLY, default=P.empty if p.required else p.default)
                for p in self.params if p.effect]
        if self.sparsify is not None and self.sparsify.ranks:
            out.append(P("topk", P.KEYWORD_ONLY, default="stable"))
        out.append(P("generator", P.KEYWORD_ONLY, default=None))
        return inspect.Signature(out, return_annotation=torch.Tensor)

    def _arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments with the row's defaults filled in; a missing required one or
        an unknown one is a TypeError, as for a plain function."""
        known: dict[str, Any] = {p.arg: p.default for p in self.params if p.effect}
        if self.sparsify is not None and self.sparsify.ranks:
            known["topk"] = "stable"
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise TypeError(f"{self.name}() got unexpected keyword arguments {unknown}")
        missing = [a for a, default in known.items() if default is None and a not in kwargs]
        if missing:
            raise TypeError(f"{self.name}() missing required keyword arguments {missing}")
        return {**known, **kwargs}


METHODS = TASK_VECTOR_METHODS  # name -> registry entry, one per row
_MERGES = {row.name: TaskVectorMerge(row.name, row.sparsify, row.elect, row.params())
           for row in ROWS}

task_arithmetic = _MERGES["task_arithmetic"]
ties = _MERGES["ties"]
dare_linear = _MERGES["dare_linear"]
dare_ties = _MERGES["dare_ties"]
della = _MERGES["della"]
della_linear = _MERGES["della_linear"]
breadcrumbs = _MERGES["breadcrumbs"]
breadcrumbs_ties = _MERGES["breadcrumbs_ties"]
