"""What each merge method is: the declarations `kinmerge methods`, `validate` and `plan` read.

Each `Method` names its function (`impl`) as "module.function" inside `kinmerge.methods`;
the function (and torch) is imported on the first merge that runs it, so listing methods and
checking a recipe start in a fraction of a second. A new method: its function in a module of its own,
its declaration here.

The checks (`check`, `caution`) run over one output tensor's resolved parameters before any
tensor is read, so they are plain Python, here beside the declarations.
"""
from __future__ import annotations

from kinmerge.errors import short_repr
from kinmerge.methods.registry import INT8_MASK, UNIT, Method, Param, Range, register


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
    name="slerp", impl="slerp.slerp", needs_base=True, n_models=1, with_base=2,
    # t outside [0, 1] extrapolates past the two models: mergekit runs it, so a warning
    params=(Param("t", "global", range=Range(0.0, 1.0, warn=True)),),
    paper="Shoemake 1985, Animating rotation with quaternion curves (SIGGRAPH)",
    summary="Spherical interpolation from the base (t=0) to the one other model (t=1).",
    accumulate="float32"))


# task_arithmetic.py
def zero_weight_sum(params: dict) -> str | None:
    """A warning: with normalize, weights summing to 0 leave the sum undivided (mergekit
    divides by 1 then too), which is rarely what normalize was written for."""
    if params.get("normalize") and abs(sum(params["weight"])) < 1e-8:
        weights = short_repr(params["weight"])
        return (f"the weights {weights} sum to 0, so normalize cannot divide by "
                "their sum: the weighted task vectors are added undivided (as in mergekit)")
    return None


register(Method(
    name="task_arithmetic", impl="task_arithmetic.task_arithmetic", needs_base=True,
    caution=zero_weight_sum,
    params=(Param("weight", "model"), Param("normalize", "global", False, bool),
            Param("lambda", "global", 1.0), INT8_MASK),
    paper="Ilharco et al. 2023, Editing Models with Task Arithmetic (arXiv:2212.04089)",
    summary="Add weighted task vectors to the base; negative weights subtract a task."))


# ties.py
register(Method(
    name="ties", impl="ties.ties", needs_base=True, options=("topk",), work="select",
    params=(Param("weight", "model"), Param("density", "model", 1.0, range=UNIT),
            Param("normalize", "global", True, bool), Param("rescale", "global", False, bool),
            Param("lambda", "global", 1.0), INT8_MASK),
    paper="Yadav et al. 2023, TIES-Merging (arXiv:2306.01708)",
    summary="Trim each task vector to its largest entries, elect a sign, average agreeing ones."))


# dare.py
_DARE_PARAMS = (Param("weight", "model"), Param("density", "model", 1.0, range=UNIT),
                Param("normalize", "global", False, bool),
                Param("rescale", "global", True, bool), Param("lambda", "global", 1.0),
                INT8_MASK)
_DARE_PAPER = "Yu et al. 2024, Language Models are Super Mario (arXiv:2311.03099)"


register(Method(work="select", name="dare_linear", impl="dare.dare_linear", needs_base=True,
                stochastic=True, caution=zero_weight_sum, params=_DARE_PARAMS, paper=_DARE_PAPER,
                summary="Randomly drop task-vector entries, rescale, then task arithmetic."))


register(Method(work="select", name="dare_ties", impl="dare.dare_ties", needs_base=True,
                stochastic=True, params=_DARE_PARAMS,
                paper=_DARE_PAPER + "; with TIES sign election",
                summary="Randomly drop task-vector entries, rescale, then TIES election."))


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
    summary="Interpolate base -> average of >= 2 fine-tunes by their task vectors' angle."))


# breadcrumbs.py
_BREADCRUMBS_PAPER = "Davari & Belilovsky 2024, Model Breadcrumbs (arXiv:2312.06795)"
# mergekit 0.1.5's defaults: density 1 (no trimming unless asked), normalize false for both
_BREADCRUMBS_P = (Param("weight", "model"), Param("density", "model", 1.0, range=UNIT),
                  Param("gamma", "model", 0.01, range=UNIT),
                  Param("normalize", "global", False, bool),
                  Param("rescale", "global", False, bool), Param("lambda", "global", 1.0),
                  INT8_MASK)


register(Method(work="select", name="breadcrumbs", impl="breadcrumbs.breadcrumbs", needs_base=True,
                paper=_BREADCRUMBS_PAPER, params=_BREADCRUMBS_P, options=("topk",),
                caution=zero_weight_sum,
                summary="Drop each task vector's largest (gamma) and smallest entries, "
                        "then task arithmetic."))


register(Method(work="select", name="breadcrumbs_ties", impl="breadcrumbs.breadcrumbs_ties",
                needs_base=True, paper=_BREADCRUMBS_PAPER + "; with TIES sign election",
                params=_BREADCRUMBS_P, options=("topk",),
                summary="Breadcrumb masks, then TIES election and disjoint sum."))


# della.py
def density_epsilon(params: dict) -> str | None:
    """MagPrune's keep probabilities run from density − ε to density + ε: inside (0, 1)."""
    for d, e in zip(params["density"], params["epsilon"]):
        if 0 < d < 1 and not (0 < d - e and d + e < 1):
            return (f"della needs 0 < density ± epsilon < 1 (keep probabilities), got "
                    f"density {d:g}, epsilon {e:g}; lower epsilon or move density away "
                    "from 0 and 1")
    return None

_DELLA_PAPER = "Deep et al. 2024, DELLA-Merging (arXiv:2406.11617)"
# mergekit 0.1.5's defaults (epsilon 0.15)
_DELLA_P = (Param("weight", "model"), Param("density", "model", 1.0, range=UNIT),
            Param("epsilon", "model", 0.15, range=Range(0.0, 0.5, high_open=True)),
            Param("rescale", "global", True, bool), Param("lambda", "global", 1.0), INT8_MASK)


register(Method(work="select", name="della", impl="della.della", needs_base=True,
                stochastic=True, paper=_DELLA_PAPER,
                params=_DELLA_P + (Param("normalize", "global", True, bool),),
                check=density_epsilon,
                summary="Magnitude-ranked random drop, rescale, then TIES election."))


register(Method(work="select", name="della_linear", impl="della.della_linear", needs_base=True,
                stochastic=True,
                paper=_DELLA_PAPER, params=_DELLA_P + (Param("normalize", "global", False, bool),),
                check=density_epsilon, caution=zero_weight_sum,
                summary="Magnitude-ranked random drop, rescale, then task arithmetic."))


# nuslerp.py
register(Method(
    name="nuslerp", impl="nuslerp.nuslerp", needs_base=False, optional_base=True, n_models=2,
    params=(Param("weight", "model"), Param("nuslerp_row_wise", "global", False, bool),
            Param("nuslerp_flatten", "global", True, bool)),
    paper="Shoemake 1985, Animating rotation with quaternion curves (SIGGRAPH); "
          "NuSLERP as defined by mergekit (Goddard et al. 2024, arXiv:2403.13257)",
    summary="Slerp between two models at t = w2/(w1+w2); of task vectors with a base; "
            "whole tensor, per row, or per column."))


# multislerp.py
register(Method(
    name="multislerp", impl="multislerp.multislerp", needs_base=False, optional_base=True,
    params=(Param("weight", "model"), Param("normalize_weights", "global", True, bool),
            Param("eps", "global", 1e-8)),
    paper="Goddard 2025, Multi-SLERP (goddard.blog/posts/multislerp-wow-what-a-cool-idea)",
    summary="Weighted spherical barycentre of any number of models (task vectors with a "
            "base)."))


# karcher.py
register(Method(
    name="karcher", impl="karcher.karcher", needs_base=False,
    params=(Param("max_iter", "global", 10), Param("tol", "global", 1e-5)),
    paper="Karcher 1977, Riemannian center of mass and mollifier smoothing (CPAM); "
          "for model merging arXiv:2603.04972",
    summary="Equal-weight Riemannian mean of the models' directions, times their mean "
            "norm."))


# sce.py
register(Method(
    name="sce", impl="sce.sce", needs_base=True,
    params=(Param("select_topk", "global", 1.0), Param("int8_mask", "global", False, bool)),
    paper="Wan et al. 2024, FuseChat: Knowledge Fusion of Chat Models (arXiv:2408.07990)",
    summary="Keep high-variance positions, weight task vectors by their mean square, erase "
            "sign conflicts."))


# nearswap.py
register(Method(
    name="nearswap", impl="nearswap.nearswap", needs_base=True, n_models=1,
    params=(Param("t", "global"),),
    paper="alchemonaut 2024, NearSwap (huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001)",
    summary="Move each base entry to the other model's value by at most t."))


# arcee_fusion.py
register(Method(
    name="arcee_fusion", impl="arcee_fusion.arcee_fusion", needs_base=True, n_models=1,
    params=(), stochastic=True,
    paper="Arcee AI 2025, Arcee Fusion (mergekit v0.1 release notes, arcee.ai blog)",
    summary="Take the fine-tune's change only where its importance is an outlier."))


# ram.py
register(Method(
    name="ram", impl="ram.ram", needs_base=True, params=(Param("epsilon", "global", 1e-5),),
    paper="Reinforced Agent Merging (arXiv:2601.13572)",
    summary="Unique changes kept whole, shared changes averaged over the models that made "
            "them."))


register(Method(
    name="ramplus_tl", impl="ram.ramplus_tl", needs_base=True,
    params=(Param("r", "global", 0.1), Param("alpha", "global", 0.2),
            Param("epsilon", "global", 1e-5)),
    paper="Reinforced Agent Merging, RAM+ (arXiv:2601.13572)",
    summary="RAM with unique changes amplified by how much each model overlaps the others "
            "(per tensor)."))
