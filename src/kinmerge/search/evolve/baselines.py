"""The hand recipes a winner is compared with: a grid of task arithmetic / TIES / DARE-TIES at
uniform weights over the same sources, user recipes, and each source model alone."""
from __future__ import annotations

from pathlib import Path

from kinmerge.search.evolve.config import EvolveConfig
from kinmerge.core.recipe import load_recipe


def baseline_recipes(cfg: EvolveConfig) -> dict[str, str]:
    """name -> recipe YAML. The grid needs a base model (all three methods use one)."""
    b = cfg.baselines
    out: dict[str, str] = {}
    if b.grid and cfg.base_model:
        for w in b.weights:
            out[f"task_arithmetic-w{w:g}"] = _uniform(cfg, "task_arithmetic", {"weight": w})
            for d in b.densities:
                for method in ("ties", "dare_ties"):
                    out[f"{method}-w{w:g}-d{d:g}"] = _uniform(
                        cfg, method, {"weight": w, "density": d})
    for name, path in b.recipes.items():
        out[name] = load_recipe(Path(path)).to_yaml()
    return out


def _uniform(cfg: EvolveConfig, method: str, params: dict) -> str:
    data = {"merge_method": method, "base_model": cfg.base_model,
            "models": [{"model": m, "parameters": dict(params)} for m in cfg.models],
            "seed": cfg.seed}
    if "dtype" in cfg.template:
        data["dtype"] = cfg.template["dtype"]
    return load_recipe(data).to_yaml()


def source_recipes(cfg: EvolveConfig) -> dict[str, str]:
    """Each source model (and the base) as a one-model linear recipe: the model itself."""
    refs = ([cfg.base_model] if cfg.base_model else []) + list(cfg.models)
    out = {}
    for ref in dict.fromkeys(refs):
        data = {"merge_method": "linear", "models": [{"model": ref, "parameters": {"weight": 1.0}}]}
        if "dtype" in cfg.template:
            data["dtype"] = cfg.template["dtype"]
        out[Path(ref).name or ref] = load_recipe(data).to_yaml()
    return out
