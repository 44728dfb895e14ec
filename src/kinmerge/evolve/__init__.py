"""Evolutionary merging (Akiba et al. 2024): CMA-ES over recipe values (PS), over the path of
layers the hidden state runs through (DFS), or both; in memory, resumable, parallel.

>>> from kinmerge.evolve import evolve
>>> result = evolve("examples/evolve-zoo.yml", "runs/evo", workers=2)   # doctest: +SKIP
>>> print(result.best_recipe.read_text())                                # doctest: +SKIP
"""
from kinmerge.evolve.config import EvolveConfig, load_evolve_config
from kinmerge.evolve.dfs import DfsSpace, apply_scales, load_dfs_model
from kinmerge.evolve.run import EvolveResult, evolve
from kinmerge.evolve.space import ParamSpace

__all__ = ["DfsSpace", "EvolveConfig", "EvolveResult", "ParamSpace", "apply_scales", "evolve",
           "load_dfs_model", "load_evolve_config"]
