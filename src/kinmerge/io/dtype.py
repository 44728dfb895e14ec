"""Tensor dtypes as plain values, so planning needs no torch.

A plan is made of names, shapes and dtypes read from file headers; none of it needs torch,
whose import alone takes seconds. `Dtype` is the one dtype value the readers and the plan
hand around: its name (torch's, e.g. "bfloat16"), its safetensors code ("BF16"), its item
size and whether it is a float; `.torch` gives the torch dtype where a tensor is made (the
first use imports torch). There is one `Dtype` per name, so `is` and `==` agree, and a
`Dtype` equals the torch dtype of its name (`Dtype == torch.float32` holds; mixing the two
in one set does not work, their hashes differ).

>>> d = as_dtype("BF16"); d.name, d.itemsize, d.is_floating_point
('bfloat16', 2, True)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class Dtype:
    """One tensor dtype by name (see the module's docstring); build with `as_dtype`."""

    __slots__ = ("name", "code", "itemsize", "is_floating_point", "_torch")

    def __init__(self, name: str, code: str, itemsize: int, is_floating_point: bool):
        self.name, self.code, self.itemsize = name, code, itemsize
        self.is_floating_point = is_floating_point
        self._torch = None

    @property
    def torch(self) -> torch.dtype:
        """The torch dtype of this name (imports torch on first use)."""
        if self._torch is None:
            import torch

            self._torch = getattr(torch, self.name)
        return self._torch

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dtype):
            return self is other
        if _is_torch_dtype(other):
            return str(other) == "torch." + self.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> tuple:
        return as_dtype, (self.name,)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Dtype({self.name!r})"


def _is_torch_dtype(x: object) -> bool:
    t = type(x)
    return t.__name__ == "dtype" and t.__module__ == "torch"


# (torch name, safetensors code, bytes per element, float): every dtype kinmerge reads
_TABLE = (("float64", "F64", 8, True), ("float32", "F32", 4, True),
          ("float16", "F16", 2, True), ("bfloat16", "BF16", 2, True),
          ("int64", "I64", 8, False), ("int32", "I32", 4, False), ("int16", "I16", 2, False),
          ("int8", "I8", 1, False), ("uint8", "U8", 1, False), ("bool", "BOOL", 1, False))
BY_NAME: dict[str, Dtype] = {n: Dtype(n, c, s, f) for n, c, s, f in _TABLE}
BY_CODE: dict[str, Dtype] = {d.code: d for d in BY_NAME.values()}


def as_dtype(x: Any) -> Dtype:
    """The `Dtype` of `x`: a Dtype, a torch dtype, a name ("float32") or a safetensors code
    ("F32"). Raises KeyError for a dtype kinmerge does not handle."""
    if isinstance(x, Dtype):
        return x
    if _is_torch_dtype(x):
        return BY_NAME[str(x).removeprefix("torch.")]
    return BY_NAME[x] if x in BY_NAME else BY_CODE[x]
