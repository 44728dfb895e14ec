"""breed.yml: the pool, the base, the merge operator, the fitness, k, kinship, stop rules, seed.

Pydantic lives here, at the edge; the loop works on the frozen `BreedConfig` it returns.

>>> cfg = load_breed_config("examples/breed-zoo.yml")        # doctest: +SKIP
>>> cfg.k, cfg.kinship.metric, cfg.explore                   # doctest: +SKIP
(3, 'pcc', True)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from kinmerge.io.configfile import MAX_MODELS, Count, Real, Seed, read_yaml, validate
from kinmerge.evaluate.tasks import FitnessSpec, TaskSpec  # noqa: F401 (re-exported)

# The paper's operator (Hu et al. 2024, Algorithm 1): SLERP, first parent as the t=0 end,
# attention and MLP on opposite gradients over the layers, everything else halfway.
DEFAULT_OPERATOR: dict[str, Any] = {
    "merge_method": "slerp",
    "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                         {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
                         {"value": 0.5}]},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KinshipSpec(_Strict):
    metric: Literal["pcc", "cs", "ed"] = "pcc"
    # early stop when the mean pairwise kinship of the top-k reaches this (similarity metrics:
    # >= threshold; ed, a distance: <= threshold). null: never.
    threshold: Real | None = 0.9  # finite: a NaN threshold would never (or always) stop

    @model_validator(mode="after")
    def _in_range(self) -> "KinshipSpec":
        t = self.threshold
        if t is not None and self.metric in ("pcc", "cs") and not -1 <= t <= 1:
            raise ValueError(f"kinship.threshold of {self.metric} (a similarity in [-1, 1]) "
                             f"must lie in [-1, 1], got {t}")
        if t is not None and self.metric == "ed" and t < 0:
            raise ValueError(f"kinship.threshold of ed (a distance) must be >= 0, got {t}")
        return self


class Budget(_Strict):
    evaluations: Count | None = None  # every model scored counts, the pool's included
    generations: Count | None = 10  # null: no limit


class BreedConfig(_Strict):
    pool: Annotated[list[str], Field(max_length=MAX_MODELS)]
    base_model: str  # the pool's common base: kinship is measured on deltas from it
    operator: dict[str, Any] = DEFAULT_OPERATOR
    fitness: FitnessSpec
    k: Annotated[StrictInt, Field(ge=2, le=MAX_MODELS)] = 3
    explore: bool = True
    # how each generation chooses its pairs: "topk" (Algorithm 1: the top-k pairwise, plus
    # exploration), "predicted" (rank candidate pairs by predicted gain; breed/predict.py) or
    # "random" (predicted's candidates and width, the pairs drawn at random: its control)
    select: Literal["topk", "predicted", "random"] = "topk"
    # exploration's partner for the best model: its least related non-ancestor (the paper's)
    # or one drawn at random among the same non-ancestors (the control of kinship's part)
    partner: Literal["least_related", "random"] = "least_related"
    # select topk, when the top-k stops changing: "stop" (Algorithm 1) or "fill" (spend the
    # rest of the budget on the untried pairs of best mean parent fitness, a generation of
    # C(k, 2) + 1 at a time: greedy at its whole budget)
    stall: Literal["stop", "fill"] = "stop"
    kinship: KinshipSpec = KinshipSpec()
    budget: Budget = Budget()
    seed: Seed = 0
    device: str = "cpu"  # where children are merged and models scored (cpu, cuda, cuda:N)

    @model_validator(mode="after")
    def _shape(self) -> "BreedConfig":
        if len(self.pool) < 2:
            raise ValueError("pool needs at least two models")
        if len(set(self.pool)) != len(self.pool):
            raise ValueError("pool lists a model twice")
        if self.k < 2:
            raise ValueError("k must be >= 2 (the top-k are merged pairwise)")
        if "merge_method" not in self.operator:
            raise ValueError("operator needs a merge_method")
        if {"models", "slices", "base_model"} & set(self.operator):
            raise ValueError("operator holds the method and its parameters only; "
                             "the parents come from the pool")
        if self.partner != "least_related" and (self.select != "topk" or not self.explore):
            raise ValueError("partner chooses exploration's partner: it needs select: topk "
                             "and explore: true")
        if self.stall != "stop" and self.select != "topk":
            raise ValueError("stall: fill continues the top-k rule: it needs select: topk")
        return self

    def fingerprint(self) -> str:
        """A hash of what changes the loop's decisions; stop rules are left out so a finished
        run can be extended with a larger budget, and the device so a run moves to a GPU.
        (Fields added later are left out at their defaults: older runs still resume.)"""
        data = self.model_dump(mode="json", exclude={"budget": True, "device": True,
                                                      "kinship": {"threshold"}})
        if not data["fitness"]["lm_eval"]:
            del data["fitness"]["lm_eval"]
        if data["select"] == "topk":
            del data["select"]
        else:  # the predicted and random rules choose every pair: explore changes nothing
            del data["explore"]
        for key, default in (("partner", "least_related"), ("stall", "stop")):
            if data[key] == default:
                del data[key]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_breed_config(source: "str | Path | dict | BreedConfig", **overrides: Any) -> BreedConfig:
    """Parse breed.yml (a path, a dict or a config); every problem is reported at once.

    `overrides` are the command line's: k, explore, select, partner, stall, seed,
    generations, evaluations.
    Relative model paths are taken relative to the working directory, as in recipes.
    """
    if isinstance(source, BreedConfig):
        data, where = source.model_dump(mode="json"), "breed config"
    else:
        data, where = read_yaml(source, subject="breed config",
                                example="examples/breed-zoo.yml")
    data = _apply(dict(data), {k: v for k, v in overrides.items() if v is not None})
    return validate(BreedConfig, data, subject="breed config", where=where,
                    fix="see docs/guides/breed.md and examples/breed-zoo.yml")


def _apply(data: dict, over: dict[str, Any]) -> dict:
    budget = dict(data.get("budget") or {})
    for key in ("generations", "evaluations"):
        if key in over:
            budget[key] = over.pop(key)
    if budget:
        data["budget"] = budget
    data.update(over)
    return data
