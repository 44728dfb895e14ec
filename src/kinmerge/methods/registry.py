"""The name -> merge method registry.

A method is one pure function over tensors:
    fn(tensors, base, *, generator, **params) -> Tensor
`tensors` are the inputs in recipe order (base excluded), `base` the base tensor or None,
per-model parameters arrive as lists aligned with `tensors`, global ones as scalars
(`lambda` arrives as `lambda_`). No file access, no dtype or device policy: the executor
casts inputs to the working dtype, places them, and casts the result.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from kinmerge.errors import KinmergeError

MethodFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Param:
    """One parameter a method declares: per model (`weight`) or global (`normalize`)."""

    name: str
    scope: Literal["model", "global"]
    default: float | bool | None = None  # None: required
    kind: type = float  # float or bool

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def arg(self) -> str:
        """The Python keyword the function takes (`lambda` is a keyword in Python)."""
        return "lambda_" if self.name == "lambda" else self.name


@dataclass(frozen=True)
class Method:
    name: str
    fn: MethodFn
    params: tuple[Param, ...]
    needs_base: bool
    paper: str
    summary: str
    stochastic: bool = False
    n_models: int | None = None  # exact number of inputs (base excluded), if fixed
    min_models: int = 1
    extra: dict = field(default_factory=dict)
    # the narrowest dtype the method's arithmetic accumulates in (None: the working dtype).
    # plan settles each job's accumulation dtype from it (float64 work stays float64) and the
    # executor passes it to the function as `accum=`
    accumulate: torch.dtype | None = None

    def accumulation(self, work: torch.dtype) -> torch.dtype | None:
        """The accumulation dtype of a job whose working dtype is `work`."""
        if self.accumulate is None:
            return None
        return work if work == torch.float64 else self.accumulate

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
