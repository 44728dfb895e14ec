"""Breeding: top-k greedy merging over a model pool, with kinship-guided exploration
(Hu et al. 2024, "Exploring Model Kinship for Merging Large Language Models", Algorithm 1).

>>> from kinmerge.search.breed import breed
>>> result = breed("examples/breed-zoo.yml", "runs/breed")      # doctest: +SKIP
"""
from kinmerge.search.breed.config import DEFAULT_OPERATOR, BreedConfig, load_breed_config
from kinmerge.search.breed.run import BreedResult, breed

__all__ = ["DEFAULT_OPERATOR", "BreedConfig", "BreedResult", "breed", "load_breed_config"]
