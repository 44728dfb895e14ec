"""Running a multi-stage recipe (several YAML documents in one file, as `mergekit-multi`
reads them; kinmerge.core.stages parses, orders and plans them): each stage the target needs
through the ordinary merge (plan -> execute -> atomic write), in dependency order; every
stage's lineage.json is read by the next, so OUT's lineage holds every stage's recipe.

A stage's recipe keeps the names of the stages it uses: its readers open each name's folder,
and what it writes names the stage, never where it was written (mergekit_config.yml holds
the stages it needs, each under its name: `kinmerge merge` runs it again; its lineage records a
stage in OUT's temporary area by name). Each stage is written with its tokenizer (later
stages read it), whatever `copy_tokenizer` says of the final output.

Where stages are written (the output rule, checked before anything runs):
- a stage's name is a label (letters, digits, `_`, `-`, `.`; see stages.NAME), never a path;
- intermediates live in OUT's own temporary area (`.{OUT}.kinmerge-tmp-...`, gone when the run
  ends, however it ends), or in an `intermediate_dir` checked like OUT: not an input model, not
  inside one, not holding one, not OUT nor inside it (it may hold OUT, but OUT may not be a
  stage's folder); an existing stage folder there is reused when it holds this very recipe's
  merge, and replaced only with `overwrite` (and only if it is a model folder);
- OUT is checked against the inputs of every stage, not only the final one's;
- OUT's lock is held for the whole run;
- every stage that will run is planned first (each against the planned outputs of the
  stages it uses), so a stage the plan refuses fails the run before any stage merges.

`kinmerge.merge(path, out)` dispatches here for such a file; `run_all` is mergekit-multi's
run (every stage into --intermediate-dir/NAME, the unnamed one into --out-path).

>>> kinmerge.merge_stages("examples/multi.yml", "runs/final")      # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from kinmerge.core.stages import (NAME, PlannedModel, RecipeSource, Stage,  # noqa: F401
                                  every_stage, in_stage, is_multistage, leaf_inputs,
                                  load_stages, plan_stages, read_stages, run_order,
                                  stage_inputs, stage_text)
from kinmerge.errors import KinmergeError, OutputExistsError, RecipeError
from kinmerge.io.atomic import scratch_dir
from kinmerge.io.configfile import read_text
from kinmerge.io.outpath import check_out, check_replaceable

log = logging.getLogger(__name__)
# NAME, PlannedModel, is_multistage, load_stages, plan_stages: their old path, kept


def merge_stages(source: RecipeSource, out: str | os.PathLike, *, stage: str | None = None,
                 intermediate_dir: str | os.PathLike | None = None, overwrite: bool = False,
                 lazy: bool = True, **merge_options) -> Path:
    """Run the stages the target needs and write the target to `out`.

    Intermediates go to `intermediate_dir` (kept; with `lazy`, a stage folder already holding
    this stage's exact recipe is reused), else to OUT's temporary area, removed when the run
    ends. Other keywords are `merge`'s (seed, device, dtype, out_shard_size, progress, ...).
    """
    return _run_target(source, out, stage=stage, intermediate_dir=intermediate_dir,
                       overwrite=overwrite, lazy=lazy, planned=False, **merge_options)


def _run_target(source: RecipeSource, out: str | os.PathLike, *, stage: str | None,
                intermediate_dir, overwrite: bool, lazy: bool, planned: bool,
                **merge_options) -> Path:
    """merge_stages; `planned`: every stage was planned already (run_all plans them all)."""
    from kinmerge.io.rundir import run_lock

    out = Path(out)
    stages, _ = read_stages(source)
    order = run_order(stages, stage)
    roots = stage_inputs(stages)
    check_out(out, roots)
    inter = _check_intermediate(intermediate_dir, out, roots, order)
    with run_lock(out, "merge"):
        check_replaceable(out, overwrite)
        if not planned:
            _plan_first(source, stage=stage, merge_options=merge_options)
        with scratch_dir(out) as scratch:
            outputs: dict[str, str] = {}
            for s in order[:-1]:
                dest = inter / s.name if inter else scratch / s.name
                outputs[s.name] = str(_run_stage(s, stages, dest, outputs,
                                                 reuse=lazy and bool(inter), temporary=not inter,
                                                 overwrite=overwrite, **merge_options))
            final = order[-1]
            log.info("stage %d/%d: %s -> %s", len(order), len(order), final.name or "final", out)
            with in_stage(final):
                _final_merge(final.recipe, out, overwrite=overwrite,
                             staged=_staged(final, stages, outputs, str(out)), **merge_options)
    return out


def run_all(source: RecipeSource, intermediate_dir: str | os.PathLike, *,
            out: str | os.PathLike | None = None, overwrite: bool = False, lazy: bool = True,
            **merge_options) -> dict[str | None, Path]:
    """mergekit-multi's run: every stage, each named one into `intermediate_dir/NAME` (with
    `lazy`, one already holding its exact recipe's merge is reused), then the unnamed one, if
    any, into `out`. Everything is checked before anything runs. Returns {name: folder}."""
    stages, where = read_stages(source)
    unnamed = [s for s in stages if s.name is None]
    if unnamed and out is None:
        raise KinmergeError("the recipe has an unnamed document (the final merge) but no "
                            "output path was given", where=where,
                            fix="pass --out-path for it, or give that document a `name:`")
    if not unnamed and out is not None:
        raise KinmergeError("--out-path was given, but every document of the recipe has a "
                            "`name:` (each is written to --intermediate-dir/NAME)", where=where,
                            fix="leave out --out-path, or remove the `name:` of the document "
                                "to write there")
    roots = stage_inputs(stages)
    named = [s for s in every_stage(stages) if s.name is not None]
    if out is not None:
        check_out(Path(out), roots)
        if os.path.lexists(out) and not overwrite:
            raise OutputExistsError(f"output path {out} already exists", where=str(out),
                                    fix="choose another path, or pass overwrite=True",
                                    cli_fix="choose another path, or pass --overwrite")
    inter = _check_intermediate(intermediate_dir, Path(out) if out else None, roots,
                                named + unnamed)
    _plan_first(source, every=True, merge_options=merge_options)
    done: dict[str | None, Path] = {}
    for s in named:
        done[s.name] = _run_stage(s, stages, inter / s.name,
                                  {k: str(v) for k, v in done.items()}, reuse=lazy,
                                  temporary=False, overwrite=overwrite, **merge_options)
    if unnamed:  # its stages were just written (or reused): merge_stages reuses them all
        done[None] = _run_target(source, out, stage=None, intermediate_dir=inter,
                                 overwrite=overwrite, lazy=True, planned=True, **merge_options)
    return done


def _plan_first(source: RecipeSource, *, stage: str | None = None, every: bool = False,
                merge_options: dict) -> None:
    """Plan every stage that will run before any runs (each against the planned outputs of
    the stages it uses): a stage the plan refuses fails the run before an earlier stage has
    spent its time merging."""
    plan_stages(source, stage=stage, every=every, dtype=merge_options.get("dtype"),
                work_dtype=merge_options.get("work_dtype"), topk=merge_options.get("ties_topk"),
                truncate_embeddings=merge_options.get("truncate_embeddings", False))


def _check_intermediate(intermediate_dir, out: Path | None, roots: list,
                        order: list[Stage]) -> Path | None:
    """`intermediate_dir` checked like OUT (and against OUT), or None when not given."""
    from kinmerge.io.outpath import _relation, _resolve

    if intermediate_dir is None:
        return None
    inter = Path(intermediate_dir)
    check_out(inter, roots, option="--intermediate-dir")
    if out is None:
        return inter
    real_out, real_inter = _resolve(out, "OUT"), _resolve(inter, "--intermediate-dir")
    rel = _relation(real_inter, real_out, True)
    if rel and rel != "holds":
        raise KinmergeError(f"--intermediate-dir {inter} {rel} OUT {out}: the stages would be "
                            "written into the final model's folder", where=str(inter),
                            fix="choose an --intermediate-dir outside OUT")
    for s in order[:-1]:
        rel = _relation(real_out, real_inter / s.name, True)
        if rel:
            raise KinmergeError(f"OUT {out} {rel} the folder of stage "
                                f"{s.name!r} ({inter / s.name}): the stage and the final "
                                "merge would overwrite each other", where=str(out),
                                fix="choose an OUT outside --intermediate-dir's stage folders")
    return inter


def _final_merge(recipe: dict, out: Path, **options) -> Path:

    from kinmerge.core.write import merge_one  # when a stage runs (torch as it computes)

    return merge_one(recipe, out, **options)


def _staged(s: Stage, stages: list[Stage], outputs: dict[str, str], ref: str):
    """What `merge_one` needs to run stage `s`: the folders of the stages it uses (no other),
    the recipe text that makes it, and what its lineage records as its place."""
    from kinmerge.core.write import Staged

    return Staged({n: outputs[n] for n in s.needs}, stage_text(stages, s), ref,
                  tuple(leaf_inputs(stages, s)))


def _run_stage(s: Stage, stages: list[Stage], dest: Path, outputs: dict[str, str], *,
               reuse: bool, temporary: bool, overwrite: bool, **merge_options) -> Path:
    staged = _staged(s, stages, outputs, s.name if temporary else str(dest))
    if os.path.lexists(dest):
        same = _holds(dest, staged.text)
        if reuse and same:
            log.info("stage %s: %s already holds this recipe's merge, reused", s.name, dest)
            return dest
        if not overwrite:
            held = "this recipe's merge" if same else "another merge"
            raise OutputExistsError(
                f"stage {s.name!r}: {dest} already holds {held}" + ("" if same else
                                                                    " (or something else)"),
                where=str(dest), fix="pass --overwrite to replace it, or choose another "
                                     "--intermediate-dir, or remove that folder yourself")
    log.info("stage %s -> %s", s.name, dest)
    from kinmerge.core.write import merge_one  # when a stage runs (torch as it computes)

    # a later stage reads this one's tokenizer: written whatever copy_tokenizer says of OUT
    options = {**merge_options, "copy_tokenizer": True}
    with in_stage(s):
        return merge_one(s.recipe, dest, overwrite=overwrite, staged=staged, **options)


def _holds(dest: Path, recipe_yaml: str) -> bool:
    """Whether the stage folder `dest` holds the merge of exactly this recipe (its
    mergekit_config.yml, a regular file read within the recipe size limit)."""
    done = dest / "mergekit_config.yml"
    if done.is_symlink() or not done.is_file():
        return False
    try:
        return read_text(done, subject="stage recipe", error=RecipeError)[0] == recipe_yaml
    except RecipeError:  # unreadable, too large, not UTF-8: not this recipe's merge
        return False
