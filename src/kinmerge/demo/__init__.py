"""The demo: zoo -> kinship -> merges of two experts -> scores -> an evolved recipe and a
breeding run, in a few minutes on a laptop.

>>> result = run_demo("runs/demo")          # what `make demo` runs      # doctest: +SKIP
>>> result.summary.best_merge                                            # doctest: +SKIP
'task_arithmetic_0.8'

Writes into `out`: summary.json (scores of every model, parents, best merge, kinship),
scores.png, kinship.png, kinship.csv, the recipes/ of every merge (mergekit YAML naming
./zoo/NAME, so `cd runs/demo && kinmerge merge recipes/ties.yml merged/` reproduces one on disk)
and zoo/ (the merged models, linked or copied from the zoo); evolve/ (a short
CMA-ES search over the two parents' task-arithmetic weights) and breed/ (kinship-guided
breeding of the experts), each with its own summary; report.html over all of it.
"""
from kinmerge.demo.folder import ZOO_IN_OUT, demo_recipes, working_dir, write_recipes
from kinmerge.demo.run import (SEARCH, SEARCH_EXAMPLES, breed_experts, compare, evolve_parents,
                               measure_kinship, plot_scores, run_demo)
from kinmerge.demo.summary import DemoBreed, DemoEvolve, DemoResult, DemoSummary

__all__ = ["SEARCH", "SEARCH_EXAMPLES", "ZOO_IN_OUT", "DemoBreed", "DemoEvolve", "DemoResult",
           "DemoSummary", "breed_experts", "compare", "demo_recipes", "evolve_parents",
           "measure_kinship", "plot_scores", "run_demo", "working_dir", "write_recipes"]
