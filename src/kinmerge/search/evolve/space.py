"""Parameter space: a genome in [0, 1]^n <-> an ordinary mergekit recipe.

Each gene is one searched value: (model, parameter, filter, layer group). Gene g decodes to
lo + g (hi - lo) over the parameter's declared range, clamped (density to [0, 1] whatever the
range says). Per-layer-group values become a gradient, per-filter values a filter list, so the
decoded recipe is one mergekit reads as it is.

>>> space = ParamSpace(cfg)                                    # doctest: +SKIP
>>> recipe = space.decode([0.5] * space.dim, seed=7)           # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from kinmerge.errors import ConfigError, RecipeError
from kinmerge.search.evolve.config import EvolveConfig
from kinmerge.core.recipe import Recipe, load_recipe

DIGITS = 6  # decoded values are rounded so best.yml stays readable; the rounded recipe is
# the one merged and scored, so nothing is lost by it
HARD_LIMITS = {"density": (0.0, 1.0), "weight": (0.0, float("inf"))}


@dataclass(frozen=True)
class Gene:
    model: int  # index into cfg.models
    param: str
    filter: str | None  # None: the catch-all entry (or no filter list at all)
    group: int  # layer group (gradient anchor)
    low: float
    high: float

    @property
    def name(self) -> str:
        f = self.filter if self.filter is not None else "all"
        return f"m{self.model}.{self.param}.{f}.g{self.group}"


class ParamSpace:
    """The PS genome of an evolve config: `dim` genes, each in [0, 1]."""

    def __init__(self, cfg: EvolveConfig, models: Sequence[str] | None = None):
        self.cfg = cfg
        self.models = list(models or cfg.models)
        s = cfg.search
        filters: list[str | None] = [*s.filters, None]
        self.genes = [Gene(k, p, f, g, lo, hi)
                      for k in range(len(self.models))
                      for p, (lo, hi) in s.params.items()
                      for f in filters
                      for g in range(s.layer_groups)]

    @property
    def dim(self) -> int:
        return len(self.genes)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.genes]

    def value(self, gene: Gene, x: float) -> float:
        """Gene value x in [0, 1] -> parameter value, clamped to the range and hard limits."""
        x = min(max(float(x), 0.0), 1.0)
        v = gene.low + x * (gene.high - gene.low)
        lo, hi = HARD_LIMITS.get(gene.param, (-float("inf"), float("inf")))
        if gene.param == "weight" and gene.low < 0:
            lo = gene.low  # a declared negative range allows task negation
        return round(min(max(v, lo), hi), DIGITS)

    def decode(self, genome: Sequence[float], *, seed: int | None = None) -> Recipe:
        """The recipe of `genome` (validated; raises RecipeError if the template is wrong)."""
        if len(genome) != self.dim:
            raise ValueError(f"genome has {len(genome)} genes, the space {self.dim}")
        values: dict[tuple[int, str, str | None], list[float]] = {}
        for gene, x in zip(self.genes, genome):
            values.setdefault((gene.model, gene.param, gene.filter), []).append(
                self.value(gene, x))
        models = []
        for k, ref in enumerate(self.models):
            params = {p: self._param_value(values, k, p) for p in self.cfg.search.params}
            models.append({"model": ref, "parameters": params})
        data: dict[str, Any] = dict(self.cfg.template)
        if self.cfg.base_model:
            data["base_model"] = self.cfg.base_model
        data["models"] = models
        if seed is not None:
            data["seed"] = int(seed)
        return load_recipe(data)

    def _param_value(self, values: dict, k: int, p: str) -> Any:
        def one(f: str | None) -> float | list[float]:
            anchors = values[(k, p, f)]
            return anchors[0] if len(anchors) == 1 else anchors

        if not self.cfg.search.filters:
            return one(None)
        return [*({"filter": f, "value": one(f)} for f in self.cfg.search.filters),
                {"value": one(None)}]

    def encode(self, recipe: Recipe) -> list[float]:
        """The genome of `recipe` (inverse of decode for recipes decode can produce)."""
        by_model = {m.model: m.parameters for m in recipe.models or []}
        out = []
        for gene in self.genes:
            v = _lookup(by_model[self.models[gene.model]][gene.param], gene)
            out.append((v - gene.low) / (gene.high - gene.low))
        return out


def check_space(cfg: EvolveConfig, where: str | None = None) -> None:
    """Refuse, before a study, a worker or OUT exists, a `template` and `search.params` whose
    candidates would be refused recipes (a misspelt parameter, one the template's method
    does not take, a required one not searched, a value out of range at either end): the
    genomes of all 0s, all 0.5s and all 1s are decoded and checked as recipes (no model is
    opened). The DFS phase merges by layer path, not by these parameters."""
    if cfg.mode == "dfs":
        return
    space = ParamSpace(cfg)
    problems: list[str] = []
    for x in (0.0, 0.5, 1.0):
        try:
            space.decode([x] * space.dim, seed=0)
        except RecipeError as e:
            problems += [f"with every gene at {x:g}: {p}" for p in e.problems
                         if f"{p}" not in {q.split(': ', 1)[-1] for q in problems}]
    if problems:
        raise ConfigError(
            problems, subject="evolve config's search space (template + search.params)",
            where=where or "template and search.params",
            fix="name in search.params the parameters the template's merge_method takes "
                "(`kinmerge methods` lists them) with ranges it accepts; the others go "
                "in template")


def _lookup(value: Any, gene: Gene) -> float:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        entry = next(e for e in value if e.get("filter") == gene.filter)
        value = entry["value"]
    if isinstance(value, list):
        return float(value[gene.group])
    return float(value)
