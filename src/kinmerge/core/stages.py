"""A multi-stage recipe as data: several YAML documents in one file, as `mergekit-multi`
reads them, parsed into `Stage`s, checked, ordered, resolved and planned, nothing written
(kinmerge.core.multistage runs them).

Each document is a recipe; a document with `name: X` makes an intermediate model X that
later documents use as a model (`model: X`, `base_model: X`, `X+lora`, a tokenizer source).
At most one document has no name. The target is the one asked for, else the unnamed
document, else the last; only it and the stages it needs run, in dependency order
(`run_order`). A stage's name is a label (letters, digits, `_`, `-`, `.`; see NAME), never a
path: a stage's recipe keeps the names it uses (its plan, errors, config and lineage name
them), and the readers of its models map each name to that stage's output (`plan_stages`:
the planned output; `kinmerge.core.multistage`: the folder it was written to).
`stage_text` is the recipe that makes one stage on its own (what its mergekit_config.yml
holds).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.io import yamlload
from kinmerge.io.configfile import read_text
from kinmerge.io.refs import split_lora

REF_KEYS = ("model", "base_model", "tokenizer_source", "source")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a stage name: a label, never a path
NAME_RULE = ("a stage name is a label later stages refer to, never a path: 1 to 64 letters, "
             "digits, '_', '-' or '.', starting with a letter or digit")
RecipeSource = "str | os.PathLike"


@dataclass(frozen=True)
class Stage:
    name: str | None
    index: int  # document position, from 0
    recipe: dict  # the document without `name`, stage names as written (readers map them)
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
        load_recipe(s.recipe)
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


def stage_text(stages: list[Stage], target: Stage) -> str:
    """The recipe that makes `target` on its own, as kinmerge writes it (mergekit_config.yml):
    a stage that uses no other is its recipe alone; else the stages it needs, each under its
    `name:`, in run order, then it (with its name, if it has one), each document as
    `Recipe.to_yaml` writes it. Read back (`kinmerge merge FILE`), it runs the same merge and
    writes the same text again."""
    from kinmerge.core.recipe import load_recipe

    docs = []
    for s in _making(stages, target):
        head = _name_line(s.name) if s.name is not None and target.needs else ""
        docs.append(head + load_recipe(s.recipe).to_yaml())
    return "---\n".join(docs)


def _making(stages: list[Stage], target: Stage) -> list[Stage]:
    """The stages that make `target`, in run order: it alone when it uses no other stage."""
    return run_order(stages, target.name) if target.needs else [target]


def _name_line(name: str) -> str:
    """`name: NAME` as YAML (quoted where YAML would read another type, e.g. `1.0`)."""
    import yaml

    return yaml.safe_dump({"name": name}, sort_keys=False)


def leaf_inputs(stages: list[Stage], target: Stage) -> list[str]:
    """The models (not stages) the stages making `target` read, in run order, once each."""
    from kinmerge.core.recipe import load_recipe

    names = {s.name for s in stages if s.name}
    refs: list[str] = []
    for s in _making(stages, target):
        refs += [r for r in load_recipe(s.recipe).model_refs() if split_lora(r)[0] not in names]
    return list(dict.fromkeys(refs))


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


@contextmanager
def in_stage(s: Stage) -> Iterator[None]:
    """A KinmergeError raised while `s` is planned or merged names the stage (and its
    document) in its `where`, so the user knows which document to fix."""
    try:
        yield
    except KinmergeError as e:
        label = f"stage {s.name or 'final'} (document {s.index + 1})"
        e.where = f"{label}: {e.where}" if e.where else label
        if e.cli_where:
            e.cli_where = f"{label}: {e.cli_where}"
        e.args = (e.message,)
        raise


def every_stage(stages: list[Stage]) -> list[Stage]:
    """Every stage, each after the stages it uses (what mergekit-multi runs)."""
    order: list[Stage] = []
    for s in stages:
        for t in run_order(stages, s.name):
            if t not in order:
                order.append(t)
    return order


def plan_stages(source: RecipeSource, *, stage: str | None = None, every: bool = False,
                dtype: str | None = None, **plan_options) -> list:
    """(stage, Plan) for each stage the target needs (with `every`: every stage), without
    computing anything: a later stage is planned against the planned outputs of the stages
    it uses; `plan_options` are `plan`'s (work_dtype, topk, truncate_embeddings). A planned output
    holds what the stage will write beside its tensors (config.json, its tokenizer with the
    tokens its vocabulary adds, its chat template), written by the merge's own code into a
    temporary folder that is gone when this returns: a later stage reads its tokenizer from
    there exactly as the merge reads it from the written stage."""
    import tempfile

    from kinmerge.core.recipe import load_recipe
    from kinmerge.core.write import _planned, write_side_files  # planning: no torch

    stages, _ = read_stages(source)
    order = every_stage(stages) if every else run_order(stages, stage)
    planned: dict[str, PlannedModel] = {}
    out = []
    with tempfile.TemporaryDirectory(prefix="kinmerge-plan-") as tmp:
        for s in order:
            with in_stage(s), _planned(load_recipe(s.recipe),
                                       planned={n: planned[n] for n in s.needs},
                                       dtype=dtype, **plan_options) as (_, readers, p):
                if s.name is not None and s is not order[-1]:  # a later stage may read it
                    folder = Path(tmp) / s.name
                    folder.mkdir()
                    write_side_files(folder, p, readers)
                    planned[s.name] = PlannedModel(s.name, p, folder)
            out.append((s, p))
    return out


class PlannedModel:
    """A stage's output before it exists: names, shapes, dtypes and config from its Plan
    (what `plan` reads of a model; reading tensor data from it is a bug), and `path`, a
    folder holding the files the stage writes beside its tensors (its tokenizer)."""

    def __init__(self, ref: str, plan, path: Path) -> None:
        self.ref, self.config, self.path = ref, plan.config, path
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
