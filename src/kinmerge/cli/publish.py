"""`kinmerge push MODEL_DIR org/name`."""
from __future__ import annotations

import click

from kinmerge.cli.app import main


@main.command("push")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--token", default=None, envvar="HF_TOKEN",
              help="Hub token (default: HF_TOKEN or your saved login).")
def push_cmd(model_dir, repo_id, private, token):
    """Publish MODEL_DIR to the hub as REPO_ID, with its model card and lineage."""
    from kinmerge.lineage.publish import push

    url = push(model_dir, repo_id, private=private, token=token)
    click.echo(f"pushed to {url}")
