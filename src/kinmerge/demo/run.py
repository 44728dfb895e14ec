"""`run_demo` and its steps, in order: the zoo, kinship of its experts, the hand merges
scored, an evolved recipe, a breeding run, the score plot and the report (kinmerge.demo
says what each writes)."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from kinmerge.demo.folder import ZOO_IN_OUT, demo_recipes, working_dir, write_recipes
from kinmerge.demo.summary import DemoBreed, DemoEvolve, DemoResult, DemoSummary
from kinmerge.evaluate import ExactMatch, evaluate_model
from kinmerge.figures import pyplot, save
from kinmerge.io.outpath import check_out, make_dir
from kinmerge.zoo.manifest import ZooManifest, read_manifest

log = logging.getLogger(__name__)


def run_demo(out: str | Path, **options) -> DemoResult:
    """Build (or reuse) the zoo, measure kinship, merge two experts, score everything, then
    evolve a recipe and breed the experts (0 trials / evaluations skips either); OUT's lock
    (`kinmerge.io.rundir.run_lock`) is held throughout. Keywords: see `_run_demo`."""
    from kinmerge.io.rundir import run_lock

    with run_lock(check_out(out), "demo"):
        return _run_demo(out, **options)


def _run_demo(out: str | Path, *, seed: int = 0, config=None, progress: bool = False,
              zoo_dir: str | Path | None = None, evolve_trials: int = 36,
              breed_evaluations: int = 20, threads: int | None = None) -> DemoResult:
    from kinmerge.core.merge import merge_to_memory
    from kinmerge.zoo.cache import zoo
    shown = Path(out)  # as the caller wrote it, for messages
    out = make_dir(check_out(out, [("--zoo", Path(zoo_dir))] if zoo_dir else [])).resolve()
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    log.info("demo: the zoo (unpacked once, then cached)")
    root = (Path(zoo_dir) if zoo_dir else zoo(config, seed)).resolve()
    manifest = read_manifest(root)
    t["zoo"] = time.perf_counter() - t0
    a, b = manifest.parents
    experts = list(manifest.experts)
    skills = list(dict.fromkeys(manifest.models[n].skill for n in experts))
    # a line per step and per scored model: logs and CI see the demo move
    log.info("demo: zoo %s ready in %.1f s; kinship of %s", root, t["zoo"], ", ".join(experts))

    t0 = time.perf_counter()
    matrix = measure_kinship(root, experts, out)
    t["kinship"] = time.perf_counter() - t0
    log.info("demo: scoring the zoo's models, then %d merges of %s and %s",
             len(demo_recipes(root, a, b)), a, b)

    evaluators = [ExactMatch(root / manifest.skills[s]["heldout"], name=s, progress=progress)
                  for s in skills]
    scores: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for name in ["base", *experts]:
        scores[name] = evaluate_model(root / name, evaluators, threads=threads)
        log.info("%s: %s", name, _fmt(scores[name]))
    t["evaluate_zoo"] = time.perf_counter() - t0

    recipes = demo_recipes(root, a, b)
    t0 = time.perf_counter()
    write_recipes(out, root, manifest)
    for name, recipe in recipes.items():
        # scored in memory, never written
        merged = merge_to_memory(recipe, seed=seed, threads=threads)
        scores[name] = evaluate_model(merged, evaluators, threads=threads)
        log.info("%s: %s", name, _fmt(scores[name]))
    t["merge_and_evaluate"] = time.perf_counter() - t0

    skill_a, skill_b = manifest.models[a].skill, manifest.models[b].skill
    best = _add_means(scores, recipes, skill_a, skill_b)
    evolved = bred = None
    with working_dir(out):  # what evolve and breed write names ./zoo/NAME, relative to OUT
        if evolve_trials:
            t0 = time.perf_counter()
            trials, best_search = evolve_parents(ZOO_IN_OUT, manifest, Path("evolve"),
                                                 evolve_trials, seed, threads=threads)
            scores["evolved"] = evaluate_model(merge_to_memory("evolve/best.yml", threads=threads),
                                               evaluators, threads=threads)
            log.info("%s: %s", "evolved", _fmt(scores["evolved"]))
            _add_means(scores, recipes, skill_a, skill_b)
            evolved = compare(scores, best, trials, best_search,
                              str(shown / "evolve" / "best.yml"))
            t["evolve"] = time.perf_counter() - t0
        if breed_evaluations:
            t0 = time.perf_counter()
            bred = breed_experts(ZOO_IN_OUT, manifest, experts, Path("breed"),
                                 breed_evaluations, seed, threads=threads)
            t["breed"] = time.perf_counter() - t0
    summary = DemoSummary(scores, (a, b), (skill_a, skill_b), best, tuple(recipes), str(root),
                          matrix.to_dict() if matrix is not None else None, t, evolved, bred)
    plot_scores(scores, [skill_a, skill_b], out / "scores.png", title=f"merging {a} + {b}")
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    from kinmerge.report.html import write_report
    write_report(out)
    return DemoResult(out, summary, matrix, t)


def _add_means(scores: dict, recipes: dict, skill_a: str, skill_b: str) -> str:
    """Add each model's mean of the parents' skills; returns the best hand merge."""
    for s in scores.values():
        s["mean"] = (s[skill_a] + s[skill_b]) / 2
    return max(recipes, key=lambda n: scores[n]["mean"])


def compare(scores: dict, best_hand: str, trials: int, best_search: float,
            best_recipe: str) -> DemoEvolve:
    """The evolved recipe against the best hand merge, on the same held-out prompts."""
    evolved, hand = scores["evolved"]["mean"], scores[best_hand]["mean"]
    return DemoEvolve(trials, best_search, best_recipe, evolved, best_hand, hand, evolved > hand)


def _parent_tasks(root: str, manifest: ZooManifest, limit: int | None = 100) -> list[dict]:
    """The two parents' skills as evolve/breed tasks: search prompts steer, held-out report."""
    skills = [manifest.models[p].skill for p in manifest.parents]
    return [{"name": s, "search": os.path.join(root, manifest.skills[s]["search"]),
             "heldout": os.path.join(root, manifest.skills[s]["heldout"]),
             "options": {"max_examples": limit}} for s in skills]


# The demo's search space: a task-arithmetic weight per parent for attention, for the MLPs
# and for the rest (6 genes), scored on all 200 search prompts of each parent skill.
SEARCH = {"params": {"weight": [0, 1.5]}, "filters": ["self_attn", "mlp"]}
SEARCH_EXAMPLES: int | None = None


def evolve_parents(root: str, manifest: ZooManifest, out: Path, trials: int, seed: int,
                   search: dict | None = None,
                   limit: int | None = SEARCH_EXAMPLES,
                   threads: int | None = None) -> tuple[int, float]:
    """CMA-ES over the parents' task-arithmetic weights (`search`, default SEARCH) into
    `out` (best.yml); (trials run, best search fitness). `root` is the zoo's folder as the
    configs will name it (joined as text: ./zoo stays ./zoo)."""
    from kinmerge.search.evolve import evolve
    cfg = {"mode": "ps", "base_model": os.path.join(root, "base"),
           "models": [os.path.join(root, p) for p in manifest.parents],
           "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
           "search": search or SEARCH,
           "fitness": {"tasks": _parent_tasks(root, manifest, limit)},
           "budget": {"trials": trials}, "baselines": {"grid": False}, "seed": seed}
    s = evolve(cfg, out, threads=threads).summary
    log.info("evolve: best search fitness %.3f after %d trials", s.best_search, s.trials)
    return s.trials, s.best_search


def breed_experts(root: str, manifest: ZooManifest, experts: list[str], out: Path,
                  evaluations: int, seed: int, threads: int | None = None) -> DemoBreed:
    """Kinship-guided breeding of the experts (task arithmetic at 0.8 as the operator); `root`
    as in evolve_parents."""
    from kinmerge.search.breed import breed
    cfg = {"pool": [os.path.join(root, e) for e in experts],
           "base_model": os.path.join(root, "base"),
           "operator": {"merge_method": "task_arithmetic", "dtype": "float32",
                        "model_parameters": {"weight": 0.8}},
           "fitness": {"tasks": _parent_tasks(root, manifest)}, "k": 3, "explore": True,
           "budget": {"evaluations": evaluations, "generations": 10}, "seed": seed}
    s = breed(cfg, out, threads=threads).summary
    log.info("breed: best %s = %.3f (%s)", s.best_model, s.best_score, s.stop_reason)
    return DemoBreed(s.best_model, s.best_score, s.stop_reason, s.evaluations)


def measure_kinship(root: Path, experts: list[str], out: Path):
    """Kinship matrix of the experts (their deltas from the base); None if unavailable."""
    try:
        from kinmerge.kinship import kinship_matrix
        from kinmerge.kinship.plot import heatmap
    except ImportError as e:  # kinship lands separately; the demo runs without it
        log.warning("kinship not available (%s): skipping the kinship matrix", e)
        return None
    m = kinship_matrix([str(root / e) for e in experts], base=str(root / "base"),
                       metrics=["cs", "pcc"])
    paths = dict(zip(m.models, experts))  # labelled by name: the cache's path means nothing
    m = replace(m, models=tuple(experts), base="base",
                norms={paths.get(k, k): v for k, v in m.norms.items()})
    m.write_csv(out / "kinship.csv", "cs")
    heatmap(m["cs"], experts, "cs", out / "kinship.png", title="kinship of the zoo's experts")
    return m


LABEL_CHARS = 24


def plot_scores(scores: dict[str, dict[str, float]], skills: list[str], path: Path,
                title: str) -> Path:
    """Grouped bars: each model's score on the two skills and their mean."""
    plt = pyplot()
    names = list(scores)
    keys = [*skills, "mean"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 4))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        xs = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [scores[n][key] for n in names], width, label=key)
    # a long name would take the figure's height from the bars: cut it, the tables keep it
    labels = [n if len(n) <= LABEL_CHARS else n[:LABEL_CHARS - 1] + "…" for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("exact match (held-out)")
    ax.set_title(title)
    ax.legend(ncols=len(keys), fontsize=8, loc="upper left")
    return save(fig, path)


def _fmt(s: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in s.items())
