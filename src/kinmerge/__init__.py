"""kinmerge: merge, measure and breed fine-tuned language models.

>>> import kinmerge
>>> kinmerge.merge("examples/ties.yml", "runs/ties")        # doctest: +SKIP

The packages, top to bottom: `cli` (commands) → `search` (evolve, breed, soup and their
runners) → `core` (recipe → plan → execute → merge) → `methods`, `kinship`, `evaluate`,
`tokenizer`, `lineage`, `zoo`, `report`, `io` → the leaves here (`errors`, `record`, `seeds`,
`threads`, `figures`). `docs/development.md` has the map.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kinmerge import _moved
from kinmerge._lazy import lazy_attributes
from kinmerge.errors import KinmergeError

if TYPE_CHECKING:
    from kinmerge.core.lora_merge import lora_merge
    from kinmerge.core.merge import MergedModel, make_plan, merge, merge_to_memory
    from kinmerge.core.multistage import merge_stages
    from kinmerge.core.recipe import Recipe, load_recipe

__all__ = ["KinmergeError", "MergedModel", "Recipe", "load_recipe", "lora_merge", "make_plan",
           "merge", "merge_stages", "merge_to_memory"]
__version__ = "0.1.0"

_moved.install()

# The public names load on first use, so `import kinmerge` and the commands that never merge
# (`kinmerge --help`, `methods`, `validate`) start without importing torch. `kinmerge.merge`
# stays the function: the old module path `kinmerge.merge` is a registered stand-in (_moved).
__getattr__, __dir__ = lazy_attributes(globals(), {
    **dict.fromkeys(["MergedModel", "make_plan", "merge", "merge_to_memory"],
                    "kinmerge.core.merge"),
    "lora_merge": "kinmerge.core.lora_merge",
    "merge_stages": "kinmerge.core.multistage",
    "Recipe": "kinmerge.core.recipe",
    "load_recipe": "kinmerge.core.recipe",
}, fallback=_moved.package_attribute)
