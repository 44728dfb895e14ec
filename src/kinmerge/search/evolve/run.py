"""`evolve(config, out)`: the PS, DFS or PS+DFS run, its held-out report and its outputs.

>>> result = evolve("examples/evolve-zoo.yml", "runs/evo", workers=2)     # doctest: +SKIP
>>> result.summary.best_heldout, result.best_recipe                        # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import optuna
import yaml

from kinmerge.search.evolve import report
from kinmerge.evaluate.tasks import check_fitness
from kinmerge.io.lora import check_models
from kinmerge.search.evolve.config import (EvolveConfig, check_run_options, eval_threads,
                                           load_evolve_config)
from kinmerge.search.evolve.dfs import DfsSpace, write_dfs_config
from kinmerge.search.evolve.fitness import BATCH
from kinmerge.search.jobs import Folder, InMemory, Job, run_job
from kinmerge.search.runners import Runner, make_runner, shared_paths
from kinmerge.search.evolve.search import (GenerationStats, default_popsize, open_study,
                                    run_search)
from kinmerge.search.evolve.space import ParamSpace, check_space
from kinmerge.search.evolve.summary import EvolveSummary
from kinmerge.search.evolve.studyname import study_prefix
from kinmerge.io.atomic import atomic_dir
from kinmerge.io.outpath import check_out, input_roots, make_dir
from kinmerge.io.reader import ModelReader
from kinmerge.io.rundir import check_database, run_lock
from kinmerge.core.layers import detect
from kinmerge.core.merge import check_device, merge
from kinmerge.seeds import tensor_seed
from kinmerge.threads import choose

log = logging.getLogger(__name__)


@dataclass
class Phase:
    """One finished search: its study and its best trial as a recipe (plus DFS scales)."""

    name: str
    study: optuna.Study
    recipe_yaml: str
    scales: list[float] | None = None
    path: list[list] | None = None


@dataclass
class EvolveResult:
    out: Path
    best_recipe: Path
    summary: EvolveSummary  # typed; also readable as the dict summary.json holds
    phases: list[Phase] = field(default_factory=list)


@dataclass
class _Run:
    cfg: EvolveConfig
    out: Path
    runner: Runner
    storage: str
    resume: bool
    trials: int | None
    on_generation: Callable[[GenerationStats], None] | None
    prefix: str = ""
    threads: int | None = None  # torch threads of each candidate's merge and scoring

    def study_name(self, phase: str) -> str:
        return f"{self.prefix}:{phase}"

    def job(self, key: str, recipe_yaml: str, split: str = "search",
            scales: Sequence[float] | None = None) -> Job:
        """A candidate's job: its recipe merged in memory and scored on `split`."""
        cfg = self.cfg
        return Job(key, InMemory(recipe_yaml, tuple(scales) if scales is not None else None,
                                 cfg.worker_cache),
                   cfg.fitness.model_dump_json(), split, cfg.device, self.threads, BATCH)


def evolve(config: "str | Path | dict | EvolveConfig", out: str | Path, *,
           trials: int | None = None, workers: int = 1, backend: str = "local",
           storage: str | None = None, resume: bool = False, save_best: bool = False,
           ray_address: str | None = None,
           on_generation: Callable[[GenerationStats], None] | None = None,
           threads: int | None = None) -> EvolveResult:
    """Search merge recipes as `config` says; write best.yml, history.csv, fitness.png,
    summary.json (and best-model/ with `save_best`, always for DFS) into `out`.

    OUT is held by this run (a second run on it is refused) and may not be or hold an input
    model. `threads`: torch threads of each candidate's scoring, wherever it runs (default:
    kinmerge.threads' policy)."""
    cfg = load_evolve_config(config)
    check_space(cfg, where=str(config) if isinstance(config, (str, Path)) else None)
    check_run_options(trials, workers)
    check_device(cfg.device)
    threads = threads if threads is not None else eval_threads()
    choose("matmul", threads)  # a bad thread count fails here, not in the first worker
    from kinmerge.search.memory import check_run_memory, memory_plan

    # the workers' memory, before anything is written
    check_run_memory(memory_plan, cfg, workers, backend, ray_address)
    out = check_out(out, input_roots([*cfg.models, cfg.base_model, cfg.dfs_partner]))
    # every input, task file and the tokenizer checked before OUT or the study is created
    check_models([*cfg.models, cfg.base_model, cfg.dfs_partner], "evolve config models")
    check_fitness(cfg.fitness, [cfg.base_model or cfg.models[0]])
    make_dir(out)
    with run_lock(out, "evolve"):
        default = storage is None
        storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
        if storage.startswith("sqlite:///"):
            check_database(storage.removeprefix("sqlite:///"), "the study database")
        run = _Run(cfg, out, None, storage, resume, trials, on_generation,
                   study_prefix(out, storage, default), threads)
        return _evolve(run, workers, backend, ray_address, save_best)


def _evolve(run: _Run, workers: int, backend: str, ray_address: str | None,
            save_best: bool) -> EvolveResult:
    cfg, out = run.cfg, run.out
    (out / "evolve.yml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    t0 = time.perf_counter()
    run.runner = make_runner(backend, workers, ray_address=ray_address, device=cfg.device,
                             shared=shared_paths([*cfg.models, cfg.base_model,
                                                  cfg.dfs_partner, str(out)]))
    try:
        phases = _phases(run)
        best = out / "best.yml"
        best.write_text(_header(cfg, phases[-1]) + phases[-1].recipe_yaml)
        if save_best or phases[-1].scales is not None:
            _save_model(phases[-1], out / "best-model")
        summary = _heldout_report(run, phases)
    finally:
        run.runner.close()
    studies = [(p.name, p.study) for p in phases]
    report.write_history(out / "history.csv", studies)
    report.plot_fitness(out / "fitness.png", studies)
    summary = replace(summary, wall_seconds=round(
        time.perf_counter() - t0 + _earlier_wall(out, run.resume), 2))
    report.write_summary(out / "summary.json", summary.to_dict())
    return EvolveResult(out, best, summary, phases)


def _earlier_wall(out: Path, resume: bool) -> float:
    """Seconds the runs before this one spent (a resumed run adds to them)."""
    try:
        return float(json.loads((out / "summary.json").read_text())["wall_seconds"]) \
            if resume else 0.0
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _phases(run: _Run) -> list[Phase]:
    cfg = run.cfg
    if cfg.mode == "dfs":
        return [_dfs_phase(run, cfg.models[0], cfg.models[1])]
    ps = _ps_phase(run)
    if cfg.mode == "ps":
        return [ps]
    a = run.out / "ps-best-model"  # the PS winner, on disk: DFS exports a recipe over it
    (run.out / "ps-best.yml").write_text(_header(cfg, ps) + ps.recipe_yaml)
    if not a.exists():
        _save_model(ps, a)
    partner = cfg.dfs_partner or cfg.models[1 if len(cfg.models) > 1 else 0]
    return [ps, _dfs_phase(run, str(a), partner)]


def _budget(run: _Run, dfs: bool) -> int:
    b = run.cfg.budget
    if run.trials is not None:
        return run.trials
    return (b.dfs_trials or b.trials) if dfs else b.trials


def _ps_phase(run: _Run) -> Phase:
    cfg = run.cfg
    space = ParamSpace(cfg)
    pop = cfg.budget.popsize or default_popsize(space.dim)
    x0 = [0.5] * space.dim
    study = open_study(run.storage, run.study_name("ps"), resume=run.resume,
                       fingerprint=cfg.fingerprint(), seed=cfg.seed,
                       x0=dict(zip(space.names, x0)), popsize=pop)

    def make_job(number: int, genome: list[float]) -> tuple[Job, dict]:
        seed = tensor_seed(cfg.seed, f"ps-trial-{number}") % 2**31
        text = space.decode(genome, seed=seed).to_yaml()
        return run.job(f"ps/{number}", text), {"recipe": text, "seed": seed}

    log.info("PS: %d genes, population %d, %d trials", space.dim, pop, _budget(run, False))
    run_search(study, space.names, x0, _budget(run, False), run.runner, make_job, phase="ps",
               popsize=pop, on_generation=run.on_generation)
    return Phase("ps", study, study.best_trial.user_attrs["recipe"])


def _dfs_phase(run: _Run, a: str, b: str) -> Phase:
    cfg = run.cfg
    space = DfsSpace(a, _num_layers(a), b, _num_layers(b), cfg.dfs, cfg.template.get("dtype"))
    pop = cfg.budget.popsize or default_popsize(space.dim)
    study = open_study(run.storage, run.study_name("dfs"), resume=run.resume,
                       fingerprint=cfg.fingerprint(), seed=cfg.seed,
                       x0=dict(zip(space.names, space.x0())), popsize=pop)

    def make_job(number: int, genome: list[float]) -> tuple[Job, dict]:
        path, scales = space.decode(genome)
        text = space.recipe(path).to_yaml()
        return run.job(f"dfs/{number}", text, scales=scales), {"recipe": text, "scales": scales, "path": space.describe(path)}

    log.info("DFS: %d slots + %d scales, population %d, %d trials", len(space.slots),
             space.n_scales, pop, _budget(run, True))
    run_search(study, space.names, space.x0(), _budget(run, True), run.runner, make_job,
               phase="dfs", popsize=pop, on_generation=run.on_generation)
    attrs = study.best_trial.user_attrs
    return Phase("dfs", study, attrs["recipe"], attrs["scales"], attrs["path"])


def _num_layers(ref: str) -> int:
    with ModelReader(ref) as r:
        return detect(r.names(), r.config).num_layers


def _header(cfg: EvolveConfig, p: Phase) -> str:
    t = p.study.best_trial
    lines = [f"# kinmerge evolve ({cfg.mode}, phase {p.name}): best of "
             f"{len(report.finished(p.study))} trials, trial {t.number}, "
             f"search fitness {t.value:.6g}"]
    if p.scales is not None:
        lines.append("# DFS: the transition scales live in best-model/config.json "
                     "(kinmerge_dfs); load it with kinmerge.search.evolve.load_dfs_model")
    return "\n".join(lines) + "\n"


def _save_model(p: Phase, out: Path) -> None:
    """Merge the winner into `out` (with its DFS scales), replacing it in one swap."""
    with atomic_dir(check_out(out, option="the exported model")) as tmp:
        model = merge(p.recipe_yaml, tmp / "model")  # inside tmp: a kill leaves one leftover
        if p.scales is not None:
            write_dfs_config(model, p.path, p.scales)
        for f in model.iterdir():
            os.rename(f, tmp / f.name)
        model.rmdir()


def _heldout_report(run: _Run, phases: list[Phase]) -> EvolveSummary:
    """The run's summary: the search's outcome and, with held-out files, the winner, the
    hand-recipe grid and the sources scored on the held-out split."""
    from kinmerge.search.evolve.baselines import baseline_recipes, source_recipes

    cfg = run.cfg
    has_heldout = all(t.heldout for t in cfg.fitness.tasks)
    searched = EvolveSummary(mode=cfg.mode,
                             trials=sum(len(report.finished(p.study)) for p in phases),
                             best_search=phases[-1].study.best_value,
                             timing={p.name: report.timing(p.study) for p in phases})
    if not has_heldout:
        log.warning("no held-out split in the fitness: held-out scores not reported")
        return searched
    last = phases[-1]
    jobs = {"best": run.job("best", last.recipe_yaml, "heldout", last.scales)}
    for name, text in baseline_recipes(cfg).items():
        jobs[f"baseline/{name}"] = run.job(name, text, "heldout")
    for name, text in source_recipes(cfg).items():
        jobs[f"source/{name}"] = run.job(name, text, "heldout")
    saved = run.out / "best-model"
    if saved.exists():  # score the export too: it must be the model that was evaluated
        jobs["saved"] = replace(run.job("saved", "", "heldout"),
                                model=Folder(str(saved), export=True))
    futures = {k: run.runner.submit(run_job, j) for k, j in jobs.items()}
    results = {k: f.result() for k, f in futures.items()}
    best, saved = results["best"], results.get("saved")
    group = {g: {k.split("/", 1)[1]: r.fitness for k, r in results.items() if k.startswith(g)}
             for g in ("baseline", "source")}
    bl = group["baseline"]
    return replace(searched, best_heldout=best.fitness, best_heldout_scores=best.scores,
                   best_model_heldout=saved.fitness if saved else None,
                   best_model_matches=saved.fitness == best.fitness if saved else None,
                   baselines_heldout=bl, sources_heldout=group["source"],
                   best_baseline=max(bl, key=bl.get) if bl else None,
                   winner_beats_best_baseline=best.fitness > max(bl.values()) if bl else None)


__all__ = ["EvolveResult", "Phase", "evolve"]
