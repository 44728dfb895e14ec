"""Publishing a model to the Hugging Face hub with its card and lineage (the paper's
Recycling step: a bred model goes back into the pool others draw from).

>>> kinmerge.lineage.publish.push("runs/breed/models/g3-1", "me/zoo-g3", private=True)  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from kinmerge import lineage as lin
from kinmerge.errors import KinmergeError
from kinmerge.io.safe_path import check_folder

log = logging.getLogger(__name__)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
SECTION = "## Lineage"


def lineage_section(found: lin.Lineage) -> str:
    """Markdown: the model's parents, their kinship, its scores and generation."""
    rec, records = found.model, found.all()
    lines = [SECTION, ""]
    if rec.generation is not None:
        lines.append(f"Generation {rec.generation}.")
    for pid in rec.parents:
        p = records.get(pid)
        lines.append(f"- parent `{p.name if p else pid}`"
                     + (f" ({p.ref})" if p and p.ref else ""))
    if rec.parent_kinship:
        lines.append("- parent kinship: " + ", ".join(
            f"{k} = " + ("undefined" if v is None else f"{v:.4f}")
            for k, v in rec.parent_kinship.items()))
    if rec.scores:
        lines.append("- scores: " + ", ".join(f"{k} = {v:.4f}" for k, v in rec.scores.items()))
    if rec.merge_gain is not None:
        lines.append(f"- merge gain: {rec.merge_gain:+.4f}")
    lines += ["", f"The full family tree ({len(found.ancestors)} ancestors) is in "
                  "`lineage.json`.", ""]
    return "\n".join(lines)


def prepare(model_dir: Path) -> str | None:
    """Check the directory is a model, and bring its card's lineage section up to date;
    returns the card's text before (None when it was left alone)."""
    if not (model_dir / "config.json").exists() or not (
            any(model_dir.glob("*.safetensors")) or any(model_dir.glob("*.bin"))):
        raise KinmergeError(f"{model_dir} is not a model directory (no config.json and "
                            "weights)", where=str(model_dir), fix="push a merged model's folder")
    check_folder(model_dir, recursive=True)  # upload_folder would publish a link's target
    return refresh_card(model_dir)


def refresh_card(model_dir: Path) -> str | None:
    """Rewrite the lineage section of the model card from lineage.json (scores included);
    returns the card's text before (None when there is no card or no lineage)."""
    found = lin.read(model_dir)
    card = model_dir / "README.md"
    if found is None or not card.exists():
        return None
    text = card.read_text()
    head = text.split(SECTION)[0].rstrip() + "\n\n"
    card.write_text(head + lineage_section(found))
    return text


def push(model_dir: str | os.PathLike, repo_id: str, *, private: bool = False,
         token: str | None = None, api=None) -> str:
    """Create (or reuse) the hub repo `repo_id` and upload the model folder; returns its URL.

    The token comes from `token`, else HF_TOKEN or the saved login, as huggingface_hub does.
    """
    model_dir = Path(model_dir)
    if not REPO_ID.match(repo_id):
        raise KinmergeError(f"not a hub repository id: {repo_id!r}", where="push",
                            fix="write it as org/name or user/name")
    before = prepare(model_dir)
    if api is None:
        from huggingface_hub import HfApi
        api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, repo_type="model",
                          commit_message=f"Upload {model_dir.name} with kinmerge",
                          ignore_patterns=["*.tmp", ".*"])
    except Exception as e:  # network, auth, quota: the hub's own message says which
        if before is not None:  # nothing was published: the local card stays as it was
            (model_dir / "README.md").write_text(before)
        raise KinmergeError(f"upload to {repo_id} failed: {type(e).__name__}: {e}",
                            where=f"hub repo {repo_id}",
                            fix="check your network and token (HF_TOKEN or `hf auth login`)"
                            ) from e
    log.info("pushed %s to %s", model_dir, url)
    return str(url)
