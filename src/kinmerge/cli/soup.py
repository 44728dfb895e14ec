"""`kinmerge soup SOUP_YML --out DIR`: the greedy soup of fine-tunes (Wortsman et al. 2022)."""
from __future__ import annotations

import click
from rich.table import Table

from kinmerge.cli.app import Stdout, main
from kinmerge.threads import HELP as THREADS_HELP

out = Stdout()


@main.command("soup")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for soup.yml, the merged soup/ and summary.json.")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def soup_cmd(config, out_dir, threads):
    """Greedy soup of CONFIG's ingredients: add each, best first, if the soup does not drop."""
    from kinmerge.search.soup import soup

    r = soup(config, out_dir, threads=threads)
    table = Table("model", "members", "search", "held-out")
    for s in (r.greedy, r.uniform, r.best_ingredient):
        table.add_row(s.name, str(len(s.members)), f"{s.search:.4f}",
                      "-" if s.heldout is None else f"{s.heldout:.4f}")
    out.print(table)
    kept = len(r.greedy.members)
    out.print(f"greedy soup: {kept} of {len(r.uniform.members)} ingredients · "
              f"{r.out / 'soup.yml'} · {r.out / 'soup'}", highlight=False)
