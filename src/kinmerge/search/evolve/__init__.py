"""Evolutionary merging (Akiba et al. 2024): CMA-ES over recipe values (PS), over the path of
layers the hidden state runs through (DFS), or both; in memory, resumable, parallel.

>>> from kinmerge.search.evolve import evolve
>>> result = evolve("examples/evolve-zoo.yml", "runs/evo", workers=2)   # doctest: +SKIP
>>> print(result.best_recipe.read_text())                                # doctest: +SKIP
"""
from kinmerge.search.evolve.config import EvolveConfig, load_evolve_config
from kinmerge.search.evolve.dfs import DfsSpace, apply_scales, load_dfs_model
from kinmerge.search.evolve.run import EvolveResult, evolve
from kinmerge.search.evolve.space import ParamSpace

__all__ = ["DfsSpace", "EvolveConfig", "EvolveResult", "ParamSpace", "apply_scales", "evolve",
           "load_dfs_model", "load_evolve_config"]
