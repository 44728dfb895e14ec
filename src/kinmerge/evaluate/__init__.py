"""Scoring models: built-in evaluators, an lm-evaluation-harness adapter, in-memory models.

>>> from kinmerge import evaluate
>>> em = evaluate.ExactMatch("zoo/tasks/add/heldout.jsonl", name="add")    # doctest: +SKIP
>>> em("zoo/add")                                  # a model directory       # doctest: +SKIP
{'add': 0.995}
>>> em(kinmerge.merge_to_memory(recipe))           # a merge, never written  # doctest: +SKIP
{'add': 0.8}

Searches (evolve, breed, soup) score a `Candidate` through one `Fitness` interface
(`kinmerge.evaluate.fitness`); `build` turns weights into a module the caller owns.
"""
from __future__ import annotations

from kinmerge.evaluate.base import Evaluator
from kinmerge.evaluate.build import build
from kinmerge.evaluate.candidate import Candidate
from kinmerge.evaluate.evaluators import (EVALUATORS, evaluate_model, make_evaluator,
                                          model_dir_scorer)
from kinmerge.evaluate.exact_match import ExactMatch
from kinmerge.evaluate.fitness import Fitness, TaskFitness, as_fitness
from kinmerge.evaluate.tasks import FitnessSpec
from kinmerge.evaluate.loglik import MultipleChoice, Perplexity
from kinmerge.evaluate.model import InMemoryModel, LoadedModel, ModelLike, load_model, read_dir

__all__ = ["Candidate", "EVALUATORS", "Evaluator", "ExactMatch", "Fitness", "FitnessSpec",
           "InMemoryModel", "LoadedModel", "TaskFitness", "as_fitness", "build",
           "ModelLike", "MultipleChoice", "Perplexity", "evaluate_model", "load_model",
           "make_evaluator", "model_dir_scorer", "read_dir"]
