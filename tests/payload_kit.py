"""A pickled checkpoint whose unpickling would run a command: what the loader must refuse."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

FORMATS = ["legacy-pickle", "torch-zip"]


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))  # leaves ./PWNED if it ever runs


def write_code_payload(model_dir: Path, fmt: str) -> Path:
    """A folder holding `pytorch_model.bin` with a code payload, in one of FORMATS."""
    model_dir.mkdir()
    f = model_dir / "pytorch_model.bin"
    if fmt == "torch-zip":
        torch.save({"w": torch.ones(1), "x": Payload()}, f)
    else:
        with open(f, "wb") as out:
            pickle.dump({"w": Payload()}, out)
    return model_dir
