"""The name -> merge method registry.

A method is one pure function over tensors:
    fn(tensors, base, *, generator, **params) -> Tensor
declared here by name (`catalog.py` holds the declarations) and imported on first use, so
the registry, and every command that only reads it, loads without torch.
`tensors` are the inputs in recipe order (base excluded), `base` the base tensor or None,
per-model parameters arrive as lists aligned with `tensors`, global ones as scalars
(`lambda` arrives as `lambda_`). No file access, no dtype or device policy: the executor
casts inputs to the working dtype, places them, and casts the result.
"""
from __future__ import annotations

import difflib
import importlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Literal

from kinmerge.errors import KinmergeError
from kinmerge.io.dtype import Dtype, as_dtype

if TYPE_CHECKING:
    import torch

MethodFn = Callable[..., "torch.Tensor"]


# Every parameter name some merge method of mergekit 0.1.5 takes. mergekit ignores a key its
# method does not declare; kinmerge accepts one of these with a warning that names it, and
# refuses any other unknown key (a typo).
MERGEKIT_PARAMETERS = frozenset({
    "weight", "density", "gamma", "epsilon", "lambda", "normalize", "rescale", "int8_mask",
    "t", "scale", "filter_wise", "normalize_weights", "eps", "nuslerp_row_wise",
    "nuslerp_flatten", "max_iter", "tol", "select_topk", "r", "alpha"})


@dataclass(frozen=True)
class Range:
    """The numbers a parameter takes. A number outside is a `validate`/`plan` error that names
    the parameter, where it is, its value and this range; with `warn`, only a warning (mergekit
    runs such values and some users mean them). NaN and ±inf are always errors."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    warn: bool = False

    def holds(self, x: float) -> bool:
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def __str__(self) -> str:
        if self.low == -math.inf and self.high == math.inf:
            return "any finite number"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open or self.high == math.inf else "]"  # inf is refused
        return f"{lo}{_num(self.low)}, {_num(self.high)}{hi}"


def _num(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"


FINITE = Range()
UNIT = Range(0.0, 1.0)
NON_NEGATIVE = Range(0.0)
POSITIVE = Range(0.0, low_open=True)
MAX_ITERATIONS = 1000  # upper bound of every iteration count a method takes (karcher max_iter)


@dataclass(frozen=True)
class Param:
    """One parameter a method declares: per model (`weight`) or global (`normalize`).

    `kind` is float, bool or int. An int parameter (an iteration count) is one whole number:
    a gradient or a filter list is refused for it, and it reaches the function as an int.
    `range` bounds its numbers (default: any finite number; gradient anchors and filter-list
    values are checked one by one). Every number a method takes declares its range here, in
    one place, so `validate` and `plan` refuse it before any tensor is read. `effect=False`
    marks a parameter mergekit declares that changes no number (`int8_mask`): accepted
    silently, not passed to the function.
    """

    name: str
    scope: Literal["model", "global"]
    default: float | bool | None = None  # None: required
    kind: type = float  # float, int or bool
    range: Range = FINITE
    effect: bool = True

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def arg(self) -> str:
        """The Python keyword the function takes (`lambda` is a keyword in Python)."""
        return "lambda_" if self.name == "lambda" else self.name


# mergekit's task-vector methods all take `int8_mask` (the dtype of their sign mask there);
# it changes no number, so kinmerge accepts it and does nothing with it
INT8_MASK = Param("int8_mask", "global", False, bool, effect=False)


@dataclass(frozen=True)
class Method:
    name: str
    # the function, as "module.function" inside kinmerge.methods (or a full dotted path);
    # `fn` imports it on first use
    impl: str
    params: tuple[Param, ...]
    needs_base: bool
    paper: str
    summary: str
    stochastic: bool = False
    n_models: int | None = None  # exact number of inputs (base excluded), if fixed
    min_models: int = 1
    # run options (not recipe parameters) the function takes as keywords: "topk" is how
    # equal magnitudes are ranked ("stable" or "mergekit"), set by `kinmerge: {topk: ...}`
    # in the recipe or `--ties-topk`
    options: tuple[str, ...] = ()
    # exact number of listed models, base included, when the base must be one of them
    # (slerp: the base and one other)
    with_base: int | None = None
    # checks over one output tensor's resolved parameters (the function's keyword arguments),
    # run by `plan` before any tensor is read: a message when the values do not go together
    check: Callable[[dict[str, Any]], str | None] | None = None  # -> an error
    caution: Callable[[dict[str, Any]], str | None] | None = None  # -> a warning
    optional_base: bool = False  # base_model, when the recipe names one, is the base (nuslerp)
    # an interpolation between two models: in a pairwise merge (breed), the first parent is
    # the recipe's base_model (slerp's t=0 end) rather than the pool's common base
    parent_base: bool = False
    # what the thread policy (kinmerge.threads) sizes for: streaming elementwise arithmetic,
    # or per-tensor top-k / random masks over whole task vectors
    work: Literal["elementwise", "select"] = "elementwise"

    @property
    def takes_base(self) -> bool:
        """Whether a recipe's base_model is passed as `base` rather than as an input."""
        return self.needs_base or self.optional_base
    # the densities of the Bernoulli masks `fn` draws for one tensor, in the order it draws
    # them, from its resolved parameters (None: not declared). The executor may then draw
    # them ahead, on its read-ahead thread, from the same per-tensor generator in the same
    # order (`kinmerge.methods.sparsify.Predrawn`): the same masks, off the arithmetic's core
    draws: Callable[[dict[str, Any]], list[float]] | None = None
    # whether the method's arithmetic gives the CPU's bytes on an accelerator. A method whose
    # result is steered by whole-tensor reductions or scalar functions (norms, dot products,
    # angles, variances) does not: a GPU sums in another order and its sin/acos round
    # otherwise (measured on an H100: up to 1 ulp in float32, a flipped top-k selection in
    # bfloat16). The executor runs such a method on the CPU under `device: cuda`
    # (`compute_device`), so an output's bytes never depend on the device.
    device_exact: bool = True
    # the narrowest dtype the method's arithmetic accumulates in (None: the working dtype).
    # plan settles each job's accumulation dtype from it (float64 work stays float64) and the
    # executor passes it to the function as `accum=`
    accumulate: Literal["float32"] | None = None  # a torch dtype's name

    @cached_property
    def fn(self) -> MethodFn:
        """The method's function (imported on first use: the merge, not the listing)."""
        path = self.impl if self.impl.startswith("kinmerge.") else \
            f"kinmerge.methods.{self.impl}"
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def accumulation(self, work: Dtype | torch.dtype) -> Dtype | None:
        """The accumulation dtype of a job whose working dtype is `work`."""
        if self.accumulate is None:
            return None
        work = as_dtype(work)
        return work if work.name == "float64" else as_dtype(self.accumulate)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def scoped(self, scope: str) -> list[Param]:
        return [p for p in self.params if p.scope == scope]


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in REGISTRY:
        raise ValueError(f"merge method {method.name!r} is registered twice")
    REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The method registered as `name`; an unknown name lists what exists."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise KinmergeError(f"unknown merge method {name!r}", where="merge_method",
                        fix=f"{hint}known methods: {', '.join(sorted(REGISTRY))}")
