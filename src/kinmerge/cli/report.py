"""`kinmerge report DIR`."""
from __future__ import annotations

import click

from kinmerge.cli.app import main


@main.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Where to write the page (default: RUN_DIR/report.html).")
@click.option("--no-plots", is_flag=True, help="Embed the images as they are; draw none.")
def report_cmd(run_dir, out_file, no_plots):
    """A self-contained HTML page with the plots and tables of RUN_DIR (breed, evolve, demo)."""
    from kinmerge.report import write_report

    click.echo(str(write_report(run_dir, out_file, plots=not no_plots)))
