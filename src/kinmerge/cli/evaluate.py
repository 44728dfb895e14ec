"""`kinmerge eval MODEL...`: score models with the built-in evaluators."""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from kinmerge.cli.app import Stdout, main
from kinmerge.errors import KinmergeError
from kinmerge.threads import HELP as THREADS_HELP

out = Stdout()
err = Console(stderr=True)


def parse_task(spec: str) -> tuple[str, str, str]:
    """`[KIND:]NAME=PATH` -> (kind, name, path); KIND defaults to exact_match."""
    head, eq, path = spec.partition("=")
    kind, _, name = head.rpartition(":")
    if not eq or not name or not path:
        raise KinmergeError(f"not a task: {spec!r}", where="--task",
                            fix="write NAME=FILE or KIND:NAME=FILE, e.g. "
                                "add=zoo/tasks/add/heldout.jsonl or perplexity:txt=notes.txt")
    return kind or "exact_match", name, path


def zoo_tasks(zoo_dir: str, split: str) -> list[tuple[str, str, str]]:
    """Every skill of a zoo (its zoo.json manifest, read by `read_manifest`), scored by exact
    match on `split`."""
    from kinmerge.zoo.manifest import read_manifest

    if not (Path(zoo_dir) / "zoo.json").is_file():
        raise KinmergeError(f"{zoo_dir} is not a zoo (no zoo.json)", where="--zoo",
                            fix="build one with `kinmerge zoo build DIR`")
    manifest = read_manifest(zoo_dir)
    missing = sorted(s for s, files in manifest.skills.items() if split not in files)
    if missing:
        raise KinmergeError(f"the zoo's manifest names no {split} task file for "
                            f"{', '.join(missing)}", where=str(Path(zoo_dir) / "zoo.json"),
                            fix="rebuild the zoo with `kinmerge zoo build DIR`")
    return [("exact_match", s, str(Path(zoo_dir) / files[split]))
            for s, files in manifest.skills.items()]


@main.command("eval")
@click.argument("models", nargs=-1, required=True)
@click.option("--task", "tasks", multiple=True, metavar="[KIND:]NAME=FILE",
              help="A task: KIND is exact_match (default), multiple_choice or perplexity.")
@click.option("--zoo", "zoo_dir", default=None, help="Score every skill of this zoo.")
@click.option("--split", type=click.Choice(["heldout", "search"]), default="heldout",
              show_default=True, help="Which of the zoo's prompt files.")
@click.option("--max-examples", type=int, default=None, help="Score the first N examples.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object {model: {task: score}}.")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
@click.option("--progress/--no-progress", default=None,
              help="A bar per model and task (default: on a terminal; off one, a line per "
                   "finished model on stderr).")
def eval_cmd(models, tasks, zoo_dir, split, max_examples, device, as_json, threads, progress):
    """Score MODELS (directories or hub ids) on tasks (prompt/answer JSONL, text files)."""
    from kinmerge.evaluate import evaluate_model, make_evaluator

    specs = [parse_task(t) for t in tasks] + (zoo_tasks(zoo_dir, split) if zoo_dir else [])
    if not specs:
        raise KinmergeError("no task to score", where="kinmerge eval",
                            fix="give --task NAME=FILE (repeatable) or --zoo DIR")
    bars = sys.stderr.isatty() if progress is None else progress
    lines = progress is None and not bars  # logs and CI: a line per finished model
    # the bars or lines replace the library's one log line per model
    logging.getLogger("kinmerge.evaluate").setLevel(logging.WARNING)
    evaluators = [make_evaluator(kind, path, name=name, device=device, max_examples=max_examples,
                                 progress=bars) for kind, name, path in specs]
    names = [name for _, name, _ in specs]
    scores = {}
    for i, m in enumerate(models, 1):
        if bars:
            err.print(f"[{i}/{len(models)}] {m}", highlight=False)
        t0 = time.perf_counter()
        scores[m] = evaluate_model(m, evaluators, threads=threads)
        if lines:
            got = " ".join(f"{n}={scores[m][n]:.4f}" for n in names)
            mean = f" mean={task_mean(scores[m], names):.4f}" if len(names) > 1 else ""
            err.print(f"[{i}/{len(models)}] {m}: {got}{mean} ({time.perf_counter() - t0:.1f} s)",
                      highlight=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    t = Table(title=f"{split if zoo_dir else 'scores'}", title_justify="left")
    t.add_column("model", overflow="fold")
    for name in names:
        t.add_column(name, justify="right")
    if len(names) > 1:  # the plain mean over tasks: what evolve and soup report by default
        t.add_column("mean", justify="right", style="bold")
    for m, s in scores.items():
        mean = [f"{task_mean(s, names):.4f}"] if len(names) > 1 else []
        t.add_row(m, *(f"{s[name]:.4f}" for name in names), *mean)
    out.print(t)


def task_mean(scores: dict[str, float], names: list[str]) -> float:
    """The unweighted mean of a model's task scores (a fitness block without weights)."""
    return sum(scores[n] for n in names) / len(names)
