"""Model references as recipes write them: `model` or `model+lora` (mergekit's syntax).

Plain string handling, no torch: `validate` and multi-stage planning read references before
any model is opened.
"""
from __future__ import annotations

import os
from pathlib import Path

from kinmerge.errors import ModelLoadError


def split_lora(ref: str | os.PathLike) -> tuple[str, str | None]:
    """`base+lora` -> (`base`, `lora`); a plain reference (or an existing path) has no LoRA."""
    ref = str(ref)
    if "+" not in ref or Path(ref).expanduser().exists():
        return ref, None
    parts = ref.split("+")
    if len(parts) != 2 or not all(parts):
        raise ModelLoadError(f"cannot read model reference {ref!r}: expected `model` or "
                             "`model+lora`", where=ref, fix="write one `+` between the model "
                             "and the LoRA adapter")
    return parts[0], parts[1]
