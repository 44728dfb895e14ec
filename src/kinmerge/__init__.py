"""kinmerge: merge, measure and breed fine-tuned language models.

>>> import kinmerge
>>> kinmerge.merge("examples/ties.yml", "runs/ties")        # doctest: +SKIP
"""
from kinmerge.errors import KinmergeError
from kinmerge.merge import MergedModel, make_plan, merge, merge_to_memory
from kinmerge.lora_merge import lora_merge
from kinmerge.multistage import merge_stages
from kinmerge.recipe import Recipe, load_recipe

__all__ = ["KinmergeError", "MergedModel", "Recipe", "load_recipe", "lora_merge", "make_plan",
           "merge", "merge_stages", "merge_to_memory"]
__version__ = "0.1.0"
