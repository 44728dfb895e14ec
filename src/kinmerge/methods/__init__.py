"""Merge methods: one small pure function each, registered by its YAML name.

The built-ins are imported here, in one visible list; importing a module registers it.
"""
from kinmerge.methods.registry import REGISTRY, Method, Param, get_method, register
from kinmerge.methods import linear, slerp, task_arithmetic, ties, dare, passthrough  # noqa: F401,E402

__all__ = ["REGISTRY", "Method", "Param", "get_method", "register"]
