"""What each merge method is: the declarations `kinmerge methods`, `validate` and `plan` read.

Each `Method` names its function (`impl`) as "module.function" inside `kinmerge.methods`;
the function (and torch) is imported on the first merge that runs it, so listing methods and
checking a recipe start in a fraction of a second. A new method: its function in a module of its own,
its declaration here.

The task-vector methods (task_arithmetic, ties, dare, della, breadcrumbs) are one composition,
sparsify × elect × rescale (`task_vector.py`): each is a `Row` of `ROWS` here, and its
declaration follows from the row.

The checks (`check`, `caution`) run over one output tensor's resolved parameters before any
tensor is read, so they are plain Python, here beside the declarations.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

from kinmerge.errors import short_repr
from kinmerge.methods.registry import (INT8_MASK, MAX_ITERATIONS, NON_NEGATIVE, UNIT, Method,
                                       Param, Range, register)


# functions in linear.py
def _weights_sum_to_zero(params: dict) -> str | None:
    """normalize divides by the weights' sum: a zero sum would write inf/NaN."""
    if params["normalize"] and abs(sum(params["weight"])) < 1e-8:
        weights = short_repr(params["weight"])
        return (f"the weights {weights} sum to 0 and normalize divides by their sum; "
                "change a weight or set normalize: false")
    return None


register(Method(
    name="linear", impl="linear.linear", needs_base=False, check=_weights_sum_to_zero,
    params=(Param("weight", "model"), Param("normalize", "global", True, bool)),
    paper="Wortsman et al. 2022, Model soups (arXiv:2203.05482)",
    summary="Weighted average of the models (a uniform soup with equal weights).",
    accumulate="float32"))


# slerp.py
register(Method(
    name="slerp", impl="slerp.slerp", needs_base=True, n_models=1, with_base=2, parent_base=True,
    # t outside [0, 1] extrapolates past the two models: mergekit runs it, so a warning
    params=(Param("t", "global", range=Range(0.0, 1.0, warn=True)),),
    paper="Shoemake 1985, Animating rotation with quaternion curves (SIGGRAPH)",
    summary="Spherical interpolation from the base (t=0) to the one other model (t=1).",
    accumulate="float32",
    device_exact=False))


# the task-vector family (task_vector.py; the steps in ties.py, dare.py, della.py,
# breadcrumbs.py)
def zero_weight_sum(params: dict) -> str | None:
    """A warning: with normalize, weights summing to 0 leave the sum undivided (mergekit
    divides by 1 then too), which is rarely what normalize was written for."""
    if params.get("normalize") and abs(sum(params["weight"])) < 1e-8:
        weights = short_repr(params["weight"])
        return (f"the weights {weights} sum to 0, so normalize cannot divide by "
                "their sum: the weighted task vectors are added undivided (as in mergekit)")
    return None


def density_epsilon(params: dict) -> str | None:
    """MagPrune's keep probabilities run from density − ε to density + ε: inside (0, 1)."""
    for d, e in zip(params["density"], params["epsilon"]):
        if 0 < d < 1 and not (0 < d - e and d + e < 1):
            return (f"della needs 0 < density ± epsilon < 1 (keep probabilities), got "
                    f"density {d:g}, epsilon {e:g}; lower epsilon or move density away "
                    "from 0 and 1")
    return None


@dataclass(frozen=True)
class Sparsify:
    """One way to thin a task vector: `step(delta, density, *extra, topk=, generator=,
    inplace=)` -> the entries kept (written into delta itself when `inplace`). `impl` names
    the step as "module.function" inside kinmerge.methods; `step` imports it on first use."""

    name: str
    impl: str
    extra: tuple[Param, ...] = ()  # the step's own per-model parameters, after density
    stochastic: bool = False  # draws from the per-tensor generator
    ranks: bool = False  # ranks magnitudes, so takes the `topk` run option
    check: Callable[[dict[str, Any]], str | None] | None = None  # plan-time, resolved values

    @cached_property
    def step(self) -> Callable[..., Any]:
        module, _, name = f"kinmerge.methods.{self.impl}".rpartition(".")
        return getattr(importlib.import_module(module), name)


def drop_draws(params: dict[str, Any]) -> list[float]:
    """The densities of the Bernoulli masks a DROP row draws for one tensor, in order: one
    per model whose density is below 1 (`thin` skips the others), nothing else."""
    return [d for d in params.get("density", ()) if d < 1]


TRIM = Sparsify("trim", "ties.trim", ranks=True)
DROP = Sparsify("drop", "dare.drop", stochastic=True)
MAGPRUNE = Sparsify("magprune", "della.magprune", stochastic=True, check=density_epsilon,
                    # mergekit 0.1.5's default epsilon
                    extra=(Param("epsilon", "model", 0.15, range=Range(0.0, 0.5, high_open=True)),))
BAND = Sparsify("band", "breadcrumbs.band", ranks=True,
                extra=(Param("gamma", "model", 0.01, range=UNIT),))


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
        """The registry entry: the function is `task_vector.<name>`, built from this row."""
        s = self.sparsify
        return Method(
            name=self.name, impl=f"task_vector.{self.name}", params=self.params(),
            needs_base=True, paper=self.paper, summary=self.summary,
            stochastic=bool(s and s.stochastic), options=("topk",) if s and s.ranks else (),
            check=s.check if s else None, caution=None if self.elect else zero_weight_sum,
            work="select" if s else "elementwise", draws=drop_draws if s is DROP else None)


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
TASK_VECTOR_METHODS = {row.name: register(row.method()) for row in ROWS}


# passthrough.py
register(Method(
    name="passthrough", impl="passthrough.passthrough", needs_base=False, n_models=1,
    params=(Param("scale", "model", 1.0),),
    paper="Goddard et al. 2024, Arcee's MergeKit (arXiv:2403.13257), passthrough/frankenmerge",
    summary="Copy one source per output tensor; with slices, stack layers from several models."))


# model_stock.py
register(Method(
    name="model_stock", impl="model_stock.model_stock", needs_base=True, min_models=2,
    params=(Param("filter_wise", "global", False, bool),),
    paper="Jang et al. 2024, Model Stock (arXiv:2403.19522)",
    summary="Interpolate base -> average of >= 2 fine-tunes by their task vectors' angle.",
    device_exact=False))


# nuslerp.py
def _nuslerp_weights_sum_to_zero(params: dict) -> str | None:
    """t = w1 / (w0 + w1) has no value when the weights cancel (mergekit silently takes 0.5)."""
    if abs(sum(params["weight"])) < 1e-6:
        return (f"nuslerp's weights {short_repr(params['weight'])} sum to 0, so t = w2/(w1+w2) "
                "is undefined; give weights with a nonzero sum (equal weights: halfway)")
    return None


register(Method(
    name="nuslerp", impl="nuslerp.nuslerp", check=_nuslerp_weights_sum_to_zero,
    needs_base=False, optional_base=True, n_models=2, parent_base=True,
    params=(Param("weight", "model"), Param("nuslerp_row_wise", "global", False, bool),
            Param("nuslerp_flatten", "global", True, bool)),
    paper="Shoemake 1985, Animating rotation with quaternion curves (SIGGRAPH); "
          "NuSLERP as defined by mergekit (Goddard et al. 2024, arXiv:2403.13257)",
    summary="Slerp between two models at t = w2/(w1+w2); of task vectors with a base; "
            "whole tensor, per row, or per column.",
    device_exact=False))


# multislerp.py
register(Method(
    name="multislerp", impl="multislerp.multislerp", needs_base=False, optional_base=True,
    params=(Param("weight", "model"), Param("normalize_weights", "global", True, bool),
            # eps > 0 keeps the division by a norm finite; a negative one flips directions
            Param("eps", "global", 1e-8, range=Range(0.0, 1.0, low_open=True))),
    paper="Goddard 2025, Multi-SLERP (goddard.blog/posts/multislerp-wow-what-a-cool-idea)",
    summary="Weighted spherical barycentre of any number of models (task vectors with a "
            "base).",
    device_exact=False))


# karcher.py
register(Method(
    name="karcher", impl="karcher.karcher", needs_base=False,
    params=(Param("max_iter", "global", 10, int, Range(1, MAX_ITERATIONS)),
            # tol > 0: the loop stops when a step is shorter; 0 would only stop at max_iter
            Param("tol", "global", 1e-5, range=Range(0.0, 1.0, low_open=True))),
    paper="Karcher 1977, Riemannian center of mass and mollifier smoothing (CPAM); "
          "for model merging arXiv:2603.04972",
    summary="Equal-weight Riemannian mean of the models' directions, times their mean "
            "norm.",
    accumulate="float32",
    device_exact=False))


# sce.py
register(Method(
    name="sce", impl="sce.sce", needs_base=True,
    params=(Param("select_topk", "global", 1.0, range=Range(0.0, 1.0, low_open=True)),
            Param("int8_mask", "global", False, bool)),
    paper="Wan et al. 2024, FuseChat: Knowledge Fusion of Chat Models (arXiv:2408.07990)",
    summary="Keep high-variance positions, weight task vectors by their mean square, erase "
            "sign conflicts.",
    device_exact=False))


# nearswap.py
register(Method(
    name="nearswap", impl="nearswap.nearswap", needs_base=True, n_models=1,
    params=(Param("t", "global", range=NON_NEGATIVE),),  # a distance: t < 0 moves away
    paper="alchemonaut 2024, NearSwap (huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001)",
    summary="Move each base entry to the other model's value by at most t."))


# arcee_fusion.py
register(Method(
    name="arcee_fusion", impl="arcee_fusion.arcee_fusion", needs_base=True, n_models=1,
    params=(), stochastic=True,
    paper="Arcee AI 2025, Arcee Fusion (mergekit v0.1 release notes, arcee.ai blog)",
    summary="Take the fine-tune's change only where its importance is an outlier.",
    accumulate="float32"))


# ram.py
# |tau| > epsilon marks an entry as changed: above 1 almost no fine-tune changes anything
_RAM_EPSILON = Range(0.0, 1.0)
# RAM+ scales a unique change by 1 + r * min(rho, alpha): at most 1 + 10 * 10 = 101x
_RAM_AMPLIFY = Range(0.0, 10.0)

register(Method(
    name="ram", impl="ram.ram", needs_base=True,
    params=(Param("epsilon", "global", 1e-5, range=_RAM_EPSILON),),
    paper="Reinforced Agent Merging (arXiv:2601.13572)",
    summary="Unique changes kept whole, shared changes averaged over the models that made "
            "them."))


register(Method(
    name="ramplus_tl", impl="ram.ramplus_tl", needs_base=True,
    params=(Param("r", "global", 0.1, range=_RAM_AMPLIFY),
            Param("alpha", "global", 0.2, range=_RAM_AMPLIFY),
            Param("epsilon", "global", 1e-5, range=_RAM_EPSILON)),
    paper="Reinforced Agent Merging, RAM+ (arXiv:2601.13572)",
    summary="RAM with unique changes amplified by how much each model overlaps the others "
            "(per tensor).",
    accumulate="float32"))
