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

A row's registry entry follows from it: its parameters (weight, density and the step's own,
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
from typing import Any, Callable

import torch

from kinmerge.errors import short_repr
from kinmerge.methods import breadcrumbs as _breadcrumbs
from kinmerge.methods import dare as _dare
from kinmerge.methods import della as _della
from kinmerge.methods import ties as _ties
from kinmerge.methods.registry import INT8_MASK, UNIT, Method, Param, Range, register
from kinmerge.methods.sparsify import combine, rescale_l1


def task_vectors(tensors: list[torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """(n_models, *shape): tau_k = theta_k - theta_0."""
    out = torch.empty((len(tensors), *base.shape), dtype=base.dtype, device=base.device)
    for k, t in enumerate(tensors):
        torch.sub(t, base, out=out[k])  # straight into place: no per-model temporaries
    return out


def zero_weight_sum(params: dict) -> str | None:
    """A warning: with normalize, weights summing to 0 leave the sum undivided (mergekit
    divides by 1 then too), which is rarely what normalize was written for."""
    if params.get("normalize") and abs(sum(params["weight"])) < 1e-8:
        weights = short_repr(params["weight"])
        return (f"the weights {weights} sum to 0, so normalize cannot divide by "
                "their sum: the weighted task vectors are added undivided (as in mergekit)")
    return None


@dataclass(frozen=True)
class Sparsify:
    """One way to thin a task vector: `step(delta, density, *extra, topk=, generator=,
    inplace=)` -> the entries kept (written into delta itself when `inplace`)."""

    name: str
    step: Callable[..., torch.Tensor]
    extra: tuple[Param, ...] = ()  # the step's own per-model parameters, after density
    stochastic: bool = False  # draws from the per-tensor generator
    ranks: bool = False  # ranks magnitudes, so takes the `topk` run option
    check: Callable[[dict[str, Any]], str | None] | None = None  # plan-time, resolved values


TRIM = Sparsify("trim", _ties.trim, ranks=True)
DROP = Sparsify("drop", _dare.drop, stochastic=True)
MAGPRUNE = Sparsify("magprune", _della.magprune, stochastic=True, check=_della.density_epsilon,
                    # mergekit 0.1.5's default epsilon
                    extra=(Param("epsilon", "model", 0.15, range=Range(0.0, 0.5, high_open=True)),))
BAND = Sparsify("band", _breadcrumbs.band, ranks=True,
                extra=(Param("gamma", "model", 0.01, range=UNIT),))


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
        kept = s.step(row, d, *(e[k] for e in extra), topk=topk, generator=generator,
                      inplace=not rescale)
        if rescale:
            deltas[k] = rescale_l1(row, kept)
        elif kept is not row:
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


@dataclass(frozen=True)
class Row:
    """One named task-vector method: its step, its election, its defaults, its citation."""

    name: str
    sparsify: Sparsify | None
    elect: bool
    normalize: bool  # the default of `normalize`
    rescale: bool  # the default of `rescale` (rows with a sparsify step only)
    paper: str
    summary: str

    def params(self) -> tuple[Param, ...]:
        out = [Param("weight", "model")]
        if self.sparsify is not None:
            out += [Param("density", "model", 1.0, range=UNIT), *self.sparsify.extra]
        out.append(Param("normalize", "global", self.normalize, bool))
        if self.sparsify is not None:
            out.append(Param("rescale", "global", self.rescale, bool))
        return (*out, Param("lambda", "global", 1.0), INT8_MASK)

    def method(self) -> Method:
        s, params = self.sparsify, self.params()
        return Method(
            name=self.name, fn=TaskVectorMerge(self.name, s, self.elect, params),
            params=params, needs_base=True, paper=self.paper, summary=self.summary,
            stochastic=bool(s and s.stochastic), options=("topk",) if s and s.ranks else (),
            check=s.check if s else None, caution=None if self.elect else zero_weight_sum,
            work="select" if s else "elementwise")


_TIES = "Yadav et al. 2023, TIES-Merging (arXiv:2306.01708)"
_DARE = "Yu et al. 2024, Language Models are Super Mario (arXiv:2311.03099)"
_DELLA = "Deep et al. 2024, DELLA-Merging (arXiv:2406.11617)"
_CRUMBS = "Davari & Belilovsky 2024, Model Breadcrumbs (arXiv:2312.06795)"
_ELECT = "; with TIES sign election"
# mergekit 0.1.5's defaults (breadcrumbs: density 1, no trimming unless asked, normalize off
# for both rows, so breadcrumbs_ties' agreeing entries add up rather than average)
ROWS = (
    Row("task_arithmetic", None, False, False, False,
        "Ilharco et al. 2023, Editing Models with Task Arithmetic (arXiv:2212.04089)",
        "Add weighted task vectors to the base; negative weights subtract a task."),
    Row("ties", TRIM, True, True, False, _TIES,
        "Trim each task vector to its largest entries, elect a sign, average agreeing ones."),
    Row("dare_linear", DROP, False, False, True, _DARE,
        "Randomly drop task-vector entries, rescale, then task arithmetic."),
    Row("dare_ties", DROP, True, False, True, _DARE + _ELECT,
        "Randomly drop task-vector entries, rescale, then TIES election."),
    Row("della", MAGPRUNE, True, True, True, _DELLA,
        "Magnitude-ranked random drop, rescale, then TIES election."),
    Row("della_linear", MAGPRUNE, False, False, True, _DELLA,
        "Magnitude-ranked random drop, rescale, then task arithmetic."),
    Row("breadcrumbs", BAND, False, False, False, _CRUMBS,
        "Drop each task vector's largest (gamma) and smallest entries, then task arithmetic."),
    Row("breadcrumbs_ties", BAND, True, False, False, _CRUMBS + _ELECT,
        "Breadcrumb masks, then TIES election and disjoint sum."),
)
METHODS = {row.name: register(row.method()) for row in ROWS}

task_arithmetic = METHODS["task_arithmetic"].fn
ties = METHODS["ties"].fn
dare_linear = METHODS["dare_linear"].fn
dare_ties = METHODS["dare_ties"].fn
della = METHODS["della"].fn
della_linear = METHODS["della_linear"].fn
breadcrumbs = METHODS["breadcrumbs"].fn
breadcrumbs_ties = METHODS["breadcrumbs_ties"].fn
