"""Merge methods: one small pure function each, registered by its YAML name.

`catalog.py` declares them all (name, parameters, ranges, paper) without importing torch;
each function lives in a module of its own (linear.py, ties.py, ...) and is imported the
first time a merge runs it (`Method.fn`).
"""
from kinmerge.methods.registry import REGISTRY, Method, Param, get_method, register
from kinmerge.methods import catalog  # noqa: F401,E402  (registers the built-ins)

__all__ = ["REGISTRY", "Method", "Param", "get_method", "register"]
