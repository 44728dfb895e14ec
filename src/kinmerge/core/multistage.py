"""Multi-stage recipes: several YAML documents in one file, as `mergekit-multimerge` reads them.

Each document is a recipe; a document with `name: X` makes an intermediate model X that
later documents use as a model (`model: X`, `base_model: X`, `X+lora`, a tokenizer source).
At most one document has no name. The target is the unnamed document, else the one asked
for, else the last; only it and the stages it needs run, each through the ordinary `merge`
(plan -> execute -> atomic write), in dependency order. Intermediate models are written to a
folder beside OUT and removed after success unless kept; every stage's lineage.json is read
by the next, so OUT's lineage holds every stage's recipe.

>>> kinmerge.merge_stages("examples/multi.yml", "runs/final")      # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


from kinmerge.io import yamlload
from kinmerge.io.configfile import read_text
from kinmerge.errors import RecipeError
from kinmerge.io.refs import split_lora

log = logging.getLogger(__name__)
REF_KEYS = ("model", "base_model", "tokenizer_source", "source")
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
    text, where = str(source), "recipe text"
    if isinstance(source, Path) or "\n" not in text:
        text, where = read_text(Path(source), subject="recipe", error=RecipeError)
    try:
        return [d for d in yamlload.load_all(text) if d is not None], where
    except yamlload.YamlError as e:
        raise RecipeError([f"not valid YAML: {e}"], where=where,
                          fix="fix the YAML at the line shown") from None


def is_multistage(source) -> bool:
    """True when `source` (a path or YAML text) holds more than one recipe document."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = str(source)
    if isinstance(source, Path) or "\n" not in text:
        path = Path(source)
        if not path.is_file():
            return False
        text = read_text(path, subject="recipe", error=RecipeError)[0]
    if "\n---" not in "\n" + text:
        return False
    return len(read_documents(source)[0]) > 1


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
        if name in seen:
            problems.append(f"document {i + 1}: " + (f"duplicate stage name {name!r}" if name
                            else "a second document without `name` (only the final merge "
                            "may be unnamed)"))
        seen.add(name)
        stages.append(Stage(name, i, doc, tuple(sorted(_used(doc, names - {name})))))
    problems += _cycles(stages)
    if problems:
        raise RecipeError(problems, where=where, fix="give each intermediate stage a unique "
                          "`name:` and refer to earlier stages by that name")
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
                 **merge_options) -> Path:
    """Run the stages the target needs and write the target to `out`.

    Intermediates go to `intermediate_dir` (kept, and reused when a stage's recipe is
    unchanged), else to a folder beside `out` that is removed once `out` is written.
    Other keywords are `merge`'s (seed, device, dtype, out_shard_size, progress, ...).
    """
    from kinmerge.errors import OutputExistsError
    from kinmerge.core.merge import merge

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output path {out} already exists", where=str(out),
                                fix="choose another path, or pass overwrite=True",
                                cli_fix="choose another path, or pass --overwrite")
    stages, _ = read_stages(source)
    order = run_order(stages, stage)
    keep = intermediate_dir is not None
    cache = Path(intermediate_dir) if keep else out.parent / f".{out.name}.stages"
    outputs: dict[str, str] = {}
    try:
        for s in order[:-1]:
            outputs[s.name] = str(_run_stage(s, cache / s.name, outputs, reuse=keep,
                                             **merge_options))
        final = order[-1]
        log.info("stage %d/%d: %s -> %s", len(order), len(order), final.name or "final", out)
        merge(resolve(final, outputs), out, overwrite=overwrite, **merge_options)
    finally:
        if not keep:
            shutil.rmtree(cache, ignore_errors=True)
    return out


def _run_stage(s: Stage, dest: Path, outputs: dict[str, str], *, reuse: bool,
               **merge_options) -> Path:
    from kinmerge.core.merge import merge
    from kinmerge.core.recipe import load_recipe

    recipe = load_recipe(resolve(s, outputs))
    done = dest / "mergekit_config.yml"
    if reuse and done.is_file() and done.read_text() == recipe.to_yaml():
        log.info("stage %s: %s already holds this recipe's merge, reused", s.name, dest)
        return dest
    log.info("stage %s -> %s", s.name, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return merge(recipe, dest, overwrite=True, **merge_options)


def plan_stages(source: RecipeSource, *, stage: str | None = None,
                dtype: str | None = None) -> list:
    """(stage, Plan) for each stage the target needs, without computing anything: a later
    stage is planned against the planned outputs of the stages it uses."""
    from kinmerge.core.merge import make_plan
    from kinmerge.core.recipe import load_recipe

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
