"""Multi-stage recipes: several YAML documents in one file, as `mergekit-multi` reads them.

Each document is a recipe; a document with `name: X` makes an intermediate model X that
later documents use as a model (`model: X`, `base_model: X`, `X+lora`, a tokenizer source).
At most one document has no name. The target is the one asked for, else the unnamed
document, else the last; only it and the stages it needs run, each through the ordinary merge
(plan -> execute -> atomic write), in dependency order; every stage's lineage.json is read by
the next, so OUT's lineage holds every stage's recipe.

Where stages are written (the output rule, checked before anything runs):
- a stage's name is a label (letters, digits, `_`, `-`, `.`; see NAME), never a path;
- intermediates live in OUT's own temporary area (`.{OUT}.kinmerge-tmp-...`, gone when the run
  ends, however it ends), or in an `intermediate_dir` checked like OUT: not an input model, not
  inside one, not holding one, not OUT nor inside it (it may hold OUT, but OUT may not be a
  stage's folder); an existing stage folder there is reused when it holds this very recipe's
  merge, and replaced only with `overwrite` (and only if it is a model folder);
- OUT is checked against the inputs of every stage, not only the final one's;
- OUT's lock is held for the whole run.

`kinmerge.merge(path, out)` dispatches here for such a file; `run_all` is mergekit-multi's
run (every stage into --intermediate-dir/NAME, the unnamed one into --out-path).

>>> kinmerge.merge_stages("examples/multi.yml", "runs/final")      # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kinmerge.errors import KinmergeError, OutputExistsError, RecipeError
from kinmerge.io import yamlload
from kinmerge.io.atomic import scratch_dir
from kinmerge.io.configfile import read_text
from kinmerge.io.outpath import check_out, check_replaceable
from kinmerge.io.refs import split_lora

log = logging.getLogger(__name__)
REF_KEYS = ("model", "base_model", "tokenizer_source", "source")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a stage name: a label, never a path
NAME_RULE = ("a stage name is a label later stages refer to, never a path: 1 to 64 letters, "
             "digits, '_', '-' or '.', starting with a letter or digit")
RecipeSource = "str | os.PathLike"


@dataclass(frozen=True)
class Stage:
    name: str | None
    index: int  # document position, from 0
    recipe: dict  # the document without `name`, stage names not yet resolved
    needs: tuple[str, ...]  # names of earlier stages it uses


def read_documents(source: RecipeSource) -> tuple[list, str]:
    """Every YAML document of a recipe file (or YAML text), and where it came from, read
    with the same limits as a single recipe (size, depth, aliases, UTF-8)."""
    text, where = _text(source)
    return _parse_all(text, where), where


def _text(source: RecipeSource) -> tuple[str, str]:
    text = str(source)
    if isinstance(source, Path) or "\n" not in text:
        return read_text(Path(source), subject="recipe", error=RecipeError)
    return text, "recipe text"


def _parse_all(text: str, where: str) -> list:
    try:
        return [d for d in yamlload.load_all(text) if d is not None]
    except yamlload.YamlError as e:
        raise RecipeError([f"not valid YAML: {e}"], where=where,
                          fix="fix the YAML at the line shown") from None


def is_multistage(source) -> bool:
    """True when `source` (a path or YAML text) holds more than one recipe document, or one
    with a `name:` (mergekit-multi's format)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    if (isinstance(source, Path) or "\n" not in str(source)) and not Path(source).is_file():
        return False
    text, where = _text(source)
    if "\n---" not in "\n" + text and not re.search(r"(?m)^name\s*:", text):
        return False
    docs = _parse_all(text, where)
    return len(docs) > 1 or (len(docs) == 1 and isinstance(docs[0], dict) and "name" in docs[0])


def load_stages(source) -> list[Stage] | None:
    """The stages of a multi-stage recipe, each checked as a recipe (without its models; a
    stage it uses stands in by name); None for a single recipe."""
    from kinmerge.core.recipe import load_recipe

    if not is_multistage(source):
        return None
    stages, _ = read_stages(source)
    for s in stages:
        load_recipe(resolve(s, {n: f"stage:{n}" for n in s.needs}))
    return stages


def read_stages(source: RecipeSource) -> tuple[list[Stage], str]:
    """The stages of a multi-document recipe, with every structural problem at once."""
    docs, where = read_documents(source)
    problems, stages, seen = [], [], set()
    names = {d["name"] for d in docs if isinstance(d, dict) and isinstance(d.get("name"), str)}
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            problems.append(f"document {i + 1} is not a mapping of recipe keys")
            continue
        doc = dict(doc)
        name = doc.pop("name", None)
        if name is not None and not isinstance(name, str):
            problems.append(f"document {i + 1}: name must be a string, got {name!r}")
            continue
        if name is not None and not NAME.fullmatch(name):
            problems.append(f"document {i + 1}: stage name {name!r} is not a name ({NAME_RULE})")
            continue
        if name in seen:
            problems.append(f"document {i + 1}: " + (f"duplicate stage name {name!r}" if name
                            else "a second document without `name` (only the final merge "
                            "may be unnamed)"))
        seen.add(name)
        stages.append(Stage(name, i, doc, tuple(sorted(_used(doc, names - {name})))))
    problems += _cycles(stages)
    if problems:
        raise RecipeError(problems, where=where, fix="rename the stage: give each intermediate "
                          "stage a unique `name:` (e.g. `name: stage-1`) and refer to earlier "
                          "stages by that name")
    return stages, where


def _used(obj, names: set[str]) -> set[str]:
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in REF_KEYS and isinstance(v, str) and split_lora(v)[0] in names:
                out.add(split_lora(v)[0])
            else:
                out |= _used(v, names)
    elif isinstance(obj, list):
        for v in obj:
            out |= _used(v, names)
    return out


def _cycles(stages: list[Stage]) -> list[str]:
    needs = {s.name: s.needs for s in stages}
    problems = []
    for s in stages:
        stack, seen = list(s.needs), set()
        while stack:
            n = stack.pop()
            if n == s.name:
                problems.append(f"stage {s.name!r} depends on itself (through {sorted(seen)})")
                break
            if n not in seen:
                seen.add(n)
                stack.extend(needs.get(n, ()))
    return problems


def run_order(stages: list[Stage], target: str | None = None) -> list[Stage]:
    """The target stage and those it needs, each after what it uses."""
    by_name = {s.name: s for s in stages}
    if target is not None and target not in by_name:
        known = ", ".join(repr(s.name) for s in stages if s.name)
        raise RecipeError([f"no stage named {target!r} (stages: {known})"], where="--stage",
                          fix="name one of the recipe's stages")
    goal = by_name[target] if target is not None else by_name.get(None, stages[-1])
    order: list[Stage] = []

    def visit(s: Stage) -> None:
        for n in s.needs:
            if by_name[n] not in order:
                visit(by_name[n])
        order.append(s)

    visit(goal)
    return order


def resolve(stage: Stage, outputs: dict[str, str]) -> dict:
    """The stage's recipe with earlier stages' names replaced by their output folders."""
    def patch(obj):
        if isinstance(obj, dict):
            return {k: (_swap(v, outputs) if k in REF_KEYS and isinstance(v, str) else patch(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [patch(v) for v in obj]
        return obj
    return patch(stage.recipe)


def _swap(ref: str, outputs: dict[str, str]) -> str:
    model, lora = split_lora(ref)
    if model not in outputs:
        return ref
    return outputs[model] + (f"+{lora}" if lora else "")


def merge_stages(source: RecipeSource, out: str | os.PathLike, *, stage: str | None = None,
                 intermediate_dir: str | os.PathLike | None = None, overwrite: bool = False,
                 lazy: bool = True, **merge_options) -> Path:
    """Run the stages the target needs and write the target to `out`.

    Intermediates go to `intermediate_dir` (kept; with `lazy`, a stage folder already holding
    this stage's exact recipe is reused), else to OUT's temporary area, removed when the run
    ends. Other keywords are `merge`'s (seed, device, dtype, out_shard_size, progress, ...).
    """
    from kinmerge.io.rundir import run_lock

    out = Path(out)
    stages, _ = read_stages(source)
    order = run_order(stages, stage)
    roots = stage_inputs(stages)
    check_out(out, roots)
    inter = _check_intermediate(intermediate_dir, out, roots, order)
    with run_lock(out, "merge"):
        check_replaceable(out, overwrite)
        with scratch_dir(out) as scratch:
            outputs: dict[str, str] = {}
            for s in order[:-1]:
                dest = inter / s.name if inter else scratch / s.name
                outputs[s.name] = str(_run_stage(s, dest, outputs, reuse=lazy and bool(inter),
                                                 overwrite=overwrite, **merge_options))
            final = order[-1]
            log.info("stage %d/%d: %s -> %s", len(order), len(order), final.name or "final", out)
            _final_merge(resolve(final, outputs), out, overwrite=overwrite, **merge_options)
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
    named = [s for s in _every(stages) if s.name is not None]
    if out is not None:
        check_out(Path(out), roots)
        if os.path.lexists(out) and not overwrite:
            raise OutputExistsError(f"output path {out} already exists", where=str(out),
                                    fix="choose another path, or pass overwrite=True",
                                    cli_fix="choose another path, or pass --overwrite")
    inter = _check_intermediate(intermediate_dir, Path(out) if out else None, roots,
                                named + unnamed)
    done: dict[str | None, Path] = {}
    for s in named:
        done[s.name] = _run_stage(s, inter / s.name, {k: str(v) for k, v in done.items()},
                                  reuse=lazy, overwrite=overwrite, **merge_options)
    if unnamed:  # its stages were just written (or reused): merge_stages reuses them all
        done[None] = merge_stages(source, out, intermediate_dir=inter, overwrite=overwrite,
                                  lazy=True, **merge_options)
    return done


def _every(stages: list[Stage]) -> list[Stage]:
    """Every stage, each after the stages it uses."""
    order: list[Stage] = []
    for s in stages:
        for t in run_order(stages, s.name):
            if t not in order:
                order.append(t)
    return order


def stage_inputs(stages: list[Stage]) -> list:
    """(ref, folder) of every model every stage reads (stage names aside), adapters included:
    what OUT and an intermediate folder must stay away from."""
    from kinmerge.io.outpath import input_roots

    names = {s.name for s in stages if s.name}
    refs: list[str] = []

    def walk(obj) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in REF_KEYS and isinstance(v, str):
                    model, lora = split_lora(v)
                    refs.extend(x for x in (model, lora) if x and x not in names)
                else:
                    walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    for s in stages:
        walk(s.recipe)
    return input_roots(dict.fromkeys(refs))


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

    from kinmerge.core.write import merge_one  # torch: only when a stage runs

    return merge_one(recipe, out, **options)


def _run_stage(s: Stage, dest: Path, outputs: dict[str, str], *, reuse: bool,
               overwrite: bool, **merge_options) -> Path:
    from kinmerge.core.recipe import load_recipe

    recipe = load_recipe(resolve(s, outputs))
    if os.path.lexists(dest):
        same = _holds(dest, recipe.to_yaml())
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
    from kinmerge.core.write import merge_one  # torch: only when a stage runs

    return merge_one(recipe, dest, overwrite=overwrite, **merge_options)


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


def plan_stages(source: RecipeSource, *, stage: str | None = None,
                dtype: str | None = None) -> list:
    """(stage, Plan) for each stage the target needs, without computing anything: a later
    stage is planned against the planned outputs of the stages it uses."""
    from kinmerge.core.recipe import load_recipe
    from kinmerge.core.write import make_plan  # torch: a plan is made

    stages, _ = read_stages(source)
    planned: dict[str, object] = {}
    out = []
    for s in run_order(stages, stage):
        stand_ins = {n: f"planned-stage:{n}" for n in s.needs}
        recipe = load_recipe(resolve(s, stand_ins))
        p = make_plan(recipe, dtype=dtype,
                      planned={stand_ins[n]: PlannedModel(stand_ins[n], planned[n])
                               for n in s.needs})
        planned[s.name] = p
        out.append((s, p))
    return out


class PlannedModel:
    """A stage's output before it exists: names, shapes, dtypes and config from its Plan
    (what `plan` reads of a model; reading tensor data from it is a bug)."""

    def __init__(self, ref: str, plan) -> None:
        self.ref, self.config = ref, plan.config
        self.path = Path(ref)  # no files: a tokenizer source cannot be a planned stage
        self._entries = {j.name: j for j in plan.jobs}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entries[name].shape)

    def dtype(self, name: str):
        return self._entries[name].out_dtype

    def shard(self, name: str) -> str:
        return "planned"

    def close(self) -> None:
        pass
