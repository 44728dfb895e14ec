"""Merge methods: one small pure function each, registered by its YAML name.

The built-ins are imported here, in one visible list; importing a module registers it.
"""
from kinmerge.methods.registry import REGISTRY, Method, Param, get_method, register
from kinmerge.methods import (  # noqa: F401,E402
    linear, slerp,
    task_vector,  # task_arithmetic, ties, dare, della, breadcrumbs: one composition, a row each
    passthrough, model_stock,
    nuslerp,  # the rest of mergekit 0.1.5's registry
    multislerp,
    karcher,
    sce,
    nearswap,
    arcee_fusion,
    ram,  # ram and ramplus_tl
)

__all__ = ["REGISTRY", "Method", "Param", "get_method", "register"]
