"""`kinmerge lineage show MODEL_DIR` and `kinmerge lineage graph RUN_DIR --out family.svg`."""
from __future__ import annotations

import click

from kinmerge.cli.app import Stdout, main
from kinmerge.errors import KinmergeError

out = Stdout()


@main.group("lineage")
def lineage_group():
    """The family tree of merged models."""


@lineage_group.command("show")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--no-recipes", is_flag=True, help="Hide the recipes.")
@click.option("--json", "as_json", is_flag=True, help="Print lineage.json's records as JSON.")
def show_cmd(model_dir, no_recipes, as_json):
    """Ancestors of MODEL_DIR back to the pool, with the recipes that made them."""
    from kinmerge import lineage as lin  # the records' schemas load with the command
    from kinmerge.lineage.show import ancestors, tree

    found = lin.read(model_dir)
    if found is None:
        raise KinmergeError(f"{model_dir} has no {lin.FILE}", where=model_dir,
                            fix="lineage is recorded for models merged by kinmerge")
    if as_json:
        click.echo(found.model_dump_json(indent=2, exclude_none=True))
        return
    out.print(tree(found, recipes=not no_recipes))
    roots = [r.name for r in ancestors(found) if r.is_root]
    out.print(f"{len(ancestors(found))} ancestors; roots: {', '.join(roots) or '—'}",
              highlight=False)


@lineage_group.command("graph")
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="Image to write; .svg, .png or .pdf by its suffix.")
def graph_cmd(path, out_file):
    """Draw the family tree of a run folder or a model (generations as columns, boxes
    coloured by score giving each model's score and its parents' kinship)."""
    from kinmerge import lineage as lin
    from kinmerge.lineage.graph import collect
    from kinmerge.lineage.tree import draw

    records = collect(path)
    if not records:
        raise KinmergeError(f"no lineage found under {path}", where=path,
                            fix=f"give a run folder or a model folder holding {lin.FILE}")
    if not out_file.lower().endswith((".svg", ".png", ".pdf")):
        raise KinmergeError(f"unknown image type: {out_file}", where="--out",
                            fix="end the file name with .svg, .png or .pdf")
    click.echo(str(draw(records, out_file)))
