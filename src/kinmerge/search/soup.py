"""Greedy soup (Wortsman et al. 2022, "Model soups", Recipe 1): average fine-tunes of one
base, adding each only if the soup does not get worse.

The ingredients are ranked by their score on the fitness's search split (held out from
training: the paper's validation set); the soup starts as the best one, and each next
ingredient joins if the uniform average with it scores at least as well as without it (the
paper's >=). The soup is an ordinary linear recipe (equal weights), written as soup.yml and
merged into OUT/soup with its lineage. The held-out split, never used for a decision, reports
the greedy soup beside the uniform soup of all ingredients and the best single ingredient.

OUT/soup.yml      the greedy soup as a mergekit-compatible linear recipe
OUT/soup/         the merged model, with lineage.json (its ingredients as parents)
OUT/summary.json  ranking, every greedy step, and the three contenders' scores

>>> result = soup("examples/soup-zoo.yml", "runs/soup")          # doctest: +SKIP
>>> result.greedy.members, result.greedy.heldout                  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kinmerge.io.configfile import MAX_MODELS, read_yaml, validate
from kinmerge.evaluate.candidate import Candidate
from kinmerge.evaluate.fitness import Fitness, TaskFitness, check_finite
from kinmerge.evaluate.tasks import FitnessSpec, check_fitness
from kinmerge.io.lora import check_models
from kinmerge.io.outpath import check_out, input_roots, make_dir
from kinmerge.core.merge import check_device, merge, merge_to_memory
from kinmerge.core.recipe import load_recipe
from kinmerge.threads import choose, using

log = logging.getLogger(__name__)


class SoupConfig(BaseModel):
    """soup.yml: the ingredients (fine-tunes of one base), the fitness, dtype and device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ingredients: Annotated[list[str], Field(max_length=MAX_MODELS)]
    fitness: FitnessSpec
    dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32"  # working and output
    device: str = "cpu"  # where soups are merged and scored

    @model_validator(mode="after")
    def _shape(self) -> "SoupConfig":
        if len(self.ingredients) < 2:
            raise ValueError("a soup needs at least two ingredients")
        if len(set(self.ingredients)) != len(self.ingredients):
            raise ValueError("ingredients lists a model twice")
        return self


def load_soup_config(source: "str | Path | dict | SoupConfig") -> SoupConfig:
    if isinstance(source, SoupConfig):
        return source
    data, where = read_yaml(source, subject="soup config", example="examples/soup-zoo.yml")
    return validate(SoupConfig, data, subject="soup config", where=where,
                    fix="see docs/guides/soup.md and examples/soup-zoo.yml")


@dataclass(frozen=True)
class Scored:
    """A model or soup: its members and its fitness on each split (None: no held-out)."""

    name: str
    members: tuple[str, ...]
    search: float
    heldout: float | None


@dataclass(frozen=True)
class Step:
    """One greedy step: the soup with `ingredient` tried, and whether it stayed."""

    ingredient: str
    score_with: float  # search fitness of the soup with the ingredient
    score_before: float
    accepted: bool


@dataclass(frozen=True)
class SoupResult:
    out: Path
    ranking: tuple[Scored, ...]  # ingredients, best first
    steps: tuple[Step, ...]
    greedy: Scored
    uniform: Scored
    best_ingredient: Scored

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def soup(config: "str | Path | dict | SoupConfig", out: str | Path, *,
         fitness: Fitness | None = None, threads: int | None = None) -> SoupResult:
    """Cook the greedy soup of `config` into `out` (see the module docstring), holding OUT's
    lock (`kinmerge.io.rundir.run_lock`) throughout. `threads`: torch threads of each merge
    and scoring (default: kinmerge.threads' policy)."""
    from kinmerge.io.rundir import run_lock

    cfg = load_soup_config(config)
    check_device(cfg.device)
    choose("matmul", threads)  # a bad thread count fails here, before OUT is made
    out = check_out(out, input_roots(cfg.ingredients))  # never an input's folder
    # every ingredient, task file and tokenizer checked before OUT is created
    check_models(cfg.ingredients, "soup config ingredients")
    if fitness is None:
        check_fitness(cfg.fitness, cfg.ingredients)
    with run_lock(out, "soup"):
        return _soup(cfg, make_dir(out), fitness, threads)


def _soup(cfg: SoupConfig, out: Path, fitness: Fitness | None,
          threads: int | None = None) -> SoupResult:
    fit = fitness or TaskFitness(cfg.fitness)
    heldout = all(t.heldout for t in cfg.fitness.tasks)  # every task can report it
    kitchen = _Kitchen(cfg, fit, heldout, threads)
    ranking = sorted((kitchen.ingredient(ref) for ref in cfg.ingredients),
                     key=lambda s: -s.search)  # stable: ties keep the config's order
    members, best, steps = [ranking[0].members[0]], ranking[0].search, []
    for ing in ranking[1:]:
        with_it = kitchen.search([*members, ing.members[0]])
        ok = with_it >= best
        steps.append(Step(ing.name, with_it, best, ok))
        log.info("soup + %s: %.4f (%s)", ing.name, with_it, "kept" if ok else "left out")
        if ok:
            members.append(ing.members[0])
            best = with_it
    result = SoupResult(Path(out), tuple(ranking), tuple(steps),
                        kitchen.contender("greedy soup", members, best),
                        kitchen.contender("uniform soup", cfg.ingredients), ranking[0])
    _write(cfg, result, threads)
    return result


class _Kitchen:
    """Scores ingredients (their folders) and soups (merged in memory), each once."""

    def __init__(self, cfg: SoupConfig, fitness: Fitness, heldout: bool,
                 threads: int | None = None):
        self.cfg, self.fitness, self.has_heldout = cfg, fitness, heldout
        self.threads = threads
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    def _score(self, members: list[str], split: str) -> float:
        key = (tuple(sorted(members)), split)
        if key not in self._cache:
            t0 = time.perf_counter()
            if len(members) == 1:
                cand = Candidate.from_dir(members[0], device=self.cfg.device)
            else:
                cand = Candidate.from_merge(merge_to_memory(recipe(self.cfg, members),
                                                            device=self.cfg.device,
                                                            threads=self.threads),
                                            device=self.cfg.device)
            with using("matmul", self.threads):
                scores = self.fitness.scores(cand, split)
            # a NaN score compares false with every other: the soup refuses it, naming it
            self._cache[key] = check_finite(self.fitness.combine(scores), cand, split)
            cand.release()
            # a line per scored model or soup: logs and CI see a long run move
            label = Path(members[0]).name if len(members) == 1 else f"soup of {len(members)}"
            log.info("scored %s (%s): %.4f in %.1f s", label, split, self._cache[key],
                     time.perf_counter() - t0)
        return self._cache[key]

    def search(self, members: list[str]) -> float:
        return self._score(members, "search")

    def contender(self, name: str, members: list[str], search: float | None = None) -> Scored:
        s = self.search(members) if search is None else search
        h = self._score(members, "heldout") if self.has_heldout else None
        return Scored(name, tuple(members), s, h)

    def ingredient(self, ref: str) -> Scored:
        return self.contender(Path(ref).name or ref, [ref])


def recipe(cfg: SoupConfig, members: list[str]) -> dict:
    """The uniform soup of `members`: linear, equal weights (normalised), the config's dtype."""
    return {"merge_method": "linear", "dtype": cfg.dtype,
            "models": [{"model": m, "parameters": {"weight": 1.0}} for m in members]}


def _write(cfg: SoupConfig, result: SoupResult, threads: int | None) -> None:
    out = result.out
    text = load_recipe(recipe(cfg, list(result.greedy.members))).to_yaml()
    (out / "soup.yml").write_text(f"# kinmerge greedy soup of {len(result.greedy.members)} "
                                  f"of {len(cfg.ingredients)} ingredients (search fitness "
                                  f"{result.greedy.search:.6g})\n" + text)
    scores = {"fitness": result.greedy.search}
    if result.greedy.heldout is not None:
        scores["heldout"] = result.greedy.heldout
    merge(text, out / "soup", overwrite=True, device=cfg.device, lineage={"scores": scores},
          threads=threads)
    (out / "summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
