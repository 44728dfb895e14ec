"""`breed(config, out)`: run (or resume) iterative merging and write what it leaves behind.

OUT/breed.yml        the configuration, as resolved
OUT/breed.db         SQLite: models, evaluations, kinships, merged pairs, generations, lineage
OUT/models/<name>/   every child, an ordinary model folder with its lineage.json
OUT/summary.json     stop reason, best model, evaluations, per-generation top-k and kinship
OUT/history.csv      one row per model: parents, fitness, scores, parent kinship, merge gain
OUT/family.json      every lineage record of the run (pool models with their scores)
OUT/*.png            fitness and top-k kinship per generation, kinship vs |merge gain|, tree

>>> result = breed("examples/breed-zoo.yml", "runs/breed")        # doctest: +SKIP
>>> result.summary.stop_reason, result.summary.best_model          # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from kinmerge.evaluate.tasks import check_fitness
from kinmerge.io.lora import check_models
from kinmerge.search.evolve.config import check_run_options
from kinmerge import lineage
from kinmerge.search.breed.config import BreedConfig, load_breed_config
from kinmerge.search.breed.fitness import Fitness, KinshipFn, as_fitness, from_spec, kinmerge_kinship
from kinmerge.search.breed.loop import Breeder
from kinmerge.search.breed.state import BreedState
from kinmerge.lineage.record import LineageRecord
from kinmerge.search.breed.summary import BreedSummary, Generation
from kinmerge.errors import KinmergeError
from kinmerge.core.merge import check_device
from kinmerge.search.jobs import prime_fitness
from kinmerge.search.runners import Runner, make_runner, shared_paths
from kinmerge.io.outpath import check_out, input_roots, make_dir
from kinmerge.io.rundir import check_database, run_lock
from kinmerge.threads import choose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreedResult:
    out: Path
    summary: BreedSummary  # typed; `summary.to_dict()` is what summary.json holds


def breed(config: "str | Path | dict | BreedConfig", out: str | Path, *,
          fitness: "Fitness | Callable | None" = None, kinship_fn: KinshipFn | None = None,
          on_generation: Callable[[dict], None] | None = None, plots: bool = True,
          workers: int = 1, backend: str = "local", ray_address: str | None = None,
          threads: int | None = None, **overrides: Any) -> BreedResult:
    """Breed the pool of `config` into `out`; rerunning on the same `out` resumes.

    `fitness` (a Fitness, or a function f(candidate, split)) and `kinship_fn` replace the
    configured fitness and kinmerge.kinship (tests, custom scoring); `overrides` are k,
    explore, select ("topk", "predicted" or "random"), partner ("least_related" or
    "random"), stall ("stop" or "fill"), seed, generations, evaluations. A generation's
    merges and evaluations run `workers` at a time in local processes, or as Ray tasks
    (`backend="ray"`, on the cluster at `ray_address`); the results are those of a
    sequential run. With workers, a `fitness`
    object must be picklable (a configured fitness always is). `threads`: torch threads of
    each merge and scoring, wherever it runs (default: kinmerge.threads' policy).
    """
    cfg = load_breed_config(config, **overrides)
    check_run_options(None, workers)
    check_device(cfg.device)
    choose("matmul", threads)  # a bad thread count fails here, not in the first worker
    out = check_out(out, input_roots([*cfg.pool, cfg.base_model]))
    # every pool model checked, then the workers' memory planned, before OUT is created
    check_models([*cfg.pool, cfg.base_model], "breed config pool")
    from kinmerge.search.memory import breed_memory_plan, check_run_memory

    check_run_memory(breed_memory_plan, cfg, workers, backend, ray_address)
    # every task file and tokenizer checked before OUT or breed.db is created
    if fitness is None:
        check_fitness(cfg.fitness, cfg.pool)
    out = make_dir(out)
    if fitness is None:  # built here once: bad tasks fail before any model is scored
        ref: Any = cfg.fitness.model_dump_json()
        prime_fitness(ref, from_spec(cfg.fitness))
    else:
        ref = as_fitness(fitness)
    with run_lock(out, "breed"):
        check_database(out / "breed.db", "the breed database")
        runner = make_runner(backend, workers, ray_address=ray_address, device=cfg.device,
                             shared=shared_paths([*cfg.pool, cfg.base_model, str(out)]))
        try:
            summary, history, family = _breed(cfg, out, ref, kinship_fn, on_generation,
                                              runner, threads)
        finally:
            runner.close()
        if plots:  # from what the run holds, typed: no file it just wrote is read back
            from kinmerge.report.plots import run_figures

            run_figures(out, summary, history, cfg.kinship.threshold, family)
    return BreedResult(out, summary)


def _breed(cfg: BreedConfig, out: Path, fitness: Any, kinship_fn: KinshipFn | None,
           on_generation: Callable[[dict], None] | None, runner: Runner,
           threads: int | None = None
           ) -> tuple[BreedSummary, list[dict], dict[str, LineageRecord]]:
    state = BreedState(out / "breed.db")
    try:
        _check_same_run(state, cfg, out)
        (out / "breed.yml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"),
                                                      sort_keys=False))
        _register_pool(state, cfg)
        breeder = Breeder(cfg, out, state, fitness, kinship_fn or kinmerge_kinship,
                          on_generation, runner=runner, threads=threads)
        stop, gens = breeder.run()
        log.info("stopped: %s", stop)
        summary = _summary(cfg, state, breeder, stop, gens)
        (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        history = _history(state)
        _write_history(out / "history.csv", history)
        records = state.lineage()
        (out / "family.json").write_text(json.dumps(
            [r.model_dump(mode="json", exclude_none=True) for r in records.values()],
            indent=2) + "\n")
        family = _family(state, records)
    finally:
        state.close()
    return summary, history, family


def _family(state: BreedState, records: dict[str, LineageRecord]) -> dict[str, LineageRecord]:
    """The family tree's records: every model of the run, as the run database holds them
    (scores included). A pool model's own ancestors (a pool model that is itself a merge)
    are only on disk, in its lineage.json beside it: read from there, as a merge reads a
    parent's lineage."""
    family = dict(records)
    for row in state.models().values():
        rec = records.get(row.lineage_id)
        if row.origin == "pool" and rec is not None and rec.parents:
            local = Path(row.path) if Path(row.path).is_dir() else None
            for rid, anc in lineage.of_parent(row.path, local).ancestors.items():
                family.setdefault(rid, anc)
    return family


def _check_same_run(state: BreedState, cfg: BreedConfig, out: Path) -> None:
    done = state.get_meta("fingerprint")
    if done is None:
        state.set_meta("fingerprint", cfg.fingerprint())
    elif done != cfg.fingerprint():
        raise KinmergeError(f"{out} holds a breed run with a different configuration",
                            where=str(out / "breed.yml"),
                            fix="use another out folder, or the same breed.yml and options to "
                                "resume (only the budget, generations and threshold may change)",
                            cli_fix="use another --out, or the same breed.yml and options to "
                                    "resume (only the budget, generations and threshold may "
                                    "change)")
    else:
        log.info("resuming the run in %s: %d evaluations and %d merges are cached", out,
                 state.evaluation_count(), len(state.merged_pairs()))


def _register_pool(state: BreedState, cfg: BreedConfig) -> None:
    if state.models():
        return
    names: set[str] = set()
    for ref in cfg.pool:
        local = Path(ref) if Path(ref).is_dir() else None
        name = (local.resolve().name if local else ref.split("@")[0].split("/")[-1]) or ref
        while name in names:  # two pools' "model" folders: keep names unique
            name += "'"
        names.add(name)
        rec = lineage.of_parent(ref, local).model
        state.add_model(name, ref, rec.id, 0)


def _summary(cfg: BreedConfig, state: BreedState, breeder: Breeder, stop: str,
             gens: list[Generation]) -> BreedSummary:
    ranked = breeder.ranked()
    best = ranked[0] if ranked else None
    return BreedSummary(cfg.explore, cfg.k, cfg.kinship.metric, state.evaluation_count(),
                        cfg.budget.evaluations, state.evaluation(best)[0] if best else None,
                        best, state.models()[best].path if best else None, stop, tuple(gens),
                        cfg.select, cfg.partner, cfg.stall, anytime(state, breeder.evaluated()),
                        state.kinship_count(cfg.kinship.metric),
                        len(breeder.selection_pairs))


def anytime(state: BreedState, evaluated: list[str]) -> tuple[float, ...]:
    """Best fitness so far after each of the models `evaluated` (in creation order)."""
    trace, best = [], float("-inf")
    for name in evaluated:
        best = max(best, state.evaluation(name)[0])  # type: ignore[index]
        trace.append(best)
    return tuple(trace)


HISTORY = ["name", "generation", "origin", "parents", "fitness", "parent_kinship",
           "merge_gain", "scores", "path"]


def _history(state: BreedState) -> list[dict]:
    """history.csv's rows: one per model, in creation order ("" where a value is missing)."""
    recs = {r.name: r for r in state.lineage().values()}
    rows = []
    for name, row in state.models().items():
        ev = state.evaluation(name)
        rec = recs.get(name)
        kin = next(iter(rec.parent_kinship.values()), None) if rec else None
        rows.append({"name": name, "generation": row.generation, "origin": row.origin,
                     "parents": " + ".join(row.parents),
                     "fitness": "" if ev is None else round(ev[0], 6),
                     "parent_kinship": "" if kin is None else round(kin, 6),
                     "merge_gain": "" if rec is None or rec.merge_gain is None
                     else round(rec.merge_gain, 6),
                     "scores": json.dumps(ev[1] if ev else {}), "path": row.path})
    return rows


def _write_history(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, HISTORY)
        w.writeheader()
        w.writerows(rows)
