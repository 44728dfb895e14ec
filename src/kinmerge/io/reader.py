"""Lazy access to a model's tensors, one at a time, whatever its storage.

Supported layouts: `model.safetensors`, sharded `*.safetensors` with
`model.safetensors.index.json`, and pickled `pytorch_model*.bin` (read with weights-only
unpickling: a file that holds anything but tensors is refused, never executed).
"""
from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from kinmerge.errors import ModelLoadError, UnsafeCheckpointError
from kinmerge.io.dtype import Dtype, as_dtype
from kinmerge.io.hub import resolve_model
from kinmerge.io.model_json import read_config, weight_map
from kinmerge.io.safe_path import inside, present, regular_file, unreadable
from kinmerge.io.safetensors_file import TensorInfo, read_header, read_range, read_tensor

if TYPE_CHECKING:  # safetensors headers are read without torch; tensors need it
    import torch

ST_SINGLE = "model.safetensors"
ST_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_GLOB = "pytorch_model*.bin"


class ModelReader:
    """A model directory opened lazily: headers are read up front, tensors on demand.

    >>> with ModelReader("path/to/model") as m:            # doctest: +SKIP
    ...     w = m.get("model.layers.0.self_attn.q_proj.weight")
    """

    def __init__(self, ref: str | os.PathLike):
        self.ref = str(ref)
        self.path = resolve_model(ref)
        self._st: dict[str, TensorInfo] = {}
        self._bin: dict[str, Path] = {}
        self._fds: dict[Path, int] = {}
        self._bin_cache: tuple[Path, dict] | None = None
        try:
            self.config: dict = read_config(self.path)
            self._index()
        except OSError as e:  # EACCES, ENAMETOOLONG, ... on a path no check above caught
            raise unreadable(Path(e.filename or self.path), e, what="model file") from e

    # --- discovery -------------------------------------------------------------------------
    def _index(self) -> None:
        p = self.path
        wanted = weight_map(p, ST_INDEX) if present(p / ST_INDEX) else {}
        # as transformers does: the index, else model.safetensors (beside it may lie an
        # adapter_model.safetensors or a consolidated.safetensors); other names are globbed
        single = [p / ST_SINGLE] if present(p / ST_SINGLE) else sorted(p.glob("*.safetensors"))
        files = sorted(set(wanted.values())) or [inside(p, f.name, what="weight file")
                                                 for f in single]
        if files:
            self._st = _safetensors_index(p, files, wanted)
            if not self._st:
                raise ModelLoadError(f"the weight files hold no tensors ({files[0].name}"
                                     f"{' and others' if len(files) > 1 else ''})",
                                     where=str(p), fix="re-download the model")
            return
        if present(p / BIN_INDEX):
            self._bin = weight_map(p, BIN_INDEX)
            for f in sorted(set(self._bin.values())):
                _listed_file(p, f)
        else:  # only the weights: training_args.bin, optimizer.bin, rng_state.pth are not
            for f in sorted(p.glob(BIN_GLOB)):
                for name in self._load_bin(inside(p, f.name, what="weight file")):
                    if name in self._bin:
                        raise _twice(name, self._bin[name], f)
                    self._bin[name] = f
        if not self._bin:
            raise ModelLoadError(
                "no weights found: expected model.safetensors, sharded *.safetensors, "
                "or pytorch_model*.bin", where=str(p),
                fix="point at a Hugging Face model directory")

    def _load_bin(self, f: Path) -> dict[str, torch.Tensor]:
        if self._bin_cache and self._bin_cache[0] == f:
            return self._bin_cache[1]
        self._bin_cache = None  # free the previous shard before loading the next
        sd = load_pickled(f)
        self._bin_cache = (f, sd)
        return sd

    # --- queries ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._st or self._bin)

    def __contains__(self, name: str) -> bool:
        return name in self._st or name in self._bin

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self._st:
            return self._st[name].shape
        return tuple(self._bin_tensor(name).shape)

    def dtype(self, name: str) -> Dtype:
        if name in self._st:
            return self._st[name].dtype
        dt = self._bin_tensor(name).dtype
        try:
            return as_dtype(dt)
        except KeyError:
            raise ModelLoadError(f"tensor {name[:200]!r} has dtype {dt}, which is not supported "
                                 "by kinmerge", where=str(self._bin_file(name)),
                                 fix="convert the model to bfloat16, float16 or float32 "
                                     "first") from None

    def shard(self, name: str) -> str:
        """The file holding `name` (used to order reads shard by shard)."""
        return (self._st[name].path if name in self._st else self._bin_file(name)).name

    def num_parameters(self) -> int:
        return sum(math.prod(self.shape(n)) for n in self.names())

    @property
    def tied_embeddings(self) -> bool:
        """True when lm_head shares the input embedding and is not stored (config says so)."""
        return bool(self.config.get("tie_word_embeddings", False)) and "lm_head.weight" not in self

    def get(self, name: str) -> torch.Tensor:
        """The tensor `name`, freshly read into CPU memory."""
        if name in self._st:
            info = self._st[name]
            return read_tensor(info, self._fd(info.path))
        return self._bin_tensor(name).clone()

    def read_flat(self, name: str, lo: int, hi: int,
                  into: bytearray | None = None) -> torch.Tensor:
        """Elements [lo, hi) of tensor `name` flattened, without reading the rest (safetensors).

        With `into`, the data lands in that reusable buffer and the result is a view of it.
        A pickled checkpoint's tensor is loaded whole once (its shard is cached) and sliced.
        """
        if name in self._st:
            info = self._st[name]
            return read_range(info, lo, hi, self._fd(info.path), into)
        return self._bin_tensor(name).reshape(-1)[lo:hi]

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = self._fds[path] = os.open(path, os.O_RDONLY)
            except OSError as e:  # the file changed since its header was read
                raise unreadable(path, e, what="weight file") from e
        return fd

    def _bin_file(self, name: str) -> Path:
        if name not in self._bin:
            raise ModelLoadError(f"tensor {name!r} not found", where=str(self.path),
                                 fix="check that all models share one architecture")
        return self._bin[name]

    def _bin_tensor(self, name: str) -> torch.Tensor:
        f = self._bin_file(name)
        sd = self._load_bin(f)
        if name not in sd:
            raise ModelLoadError(f"tensor {name[:200]!r} is listed in {BIN_INDEX} under {f.name}, "
                                 "which does not hold it", where=str(f),
                                 fix="re-download the model")
        return sd[name]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._bin_cache = None

    def __enter__(self) -> "ModelReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ModelReader({self.ref!r})"


def load_pickled(f: Path, *, what: str = "weight file") -> dict[str, torch.Tensor]:
    """The flat {name: tensor} dict of a pickled checkpoint (models' pytorch_model*.bin and
    adapters' adapter_model.bin alike), unpickled weights-only: a file holding anything else
    is refused in kinmerge's words (UnsafeCheckpointError), never run."""
    import torch  # a pickled checkpoint is torch's format: even its names need torch

    regular_file(f, what=what)  # is_zipfile and torch.load would block on a FIFO
    try:
        # weights_only: the unpickler builds tensors and containers, nothing else
        sd = torch.load(f, map_location="cpu", weights_only=True,
                        mmap=zipfile.is_zipfile(f))  # legacy pickles cannot be mapped
    except pickle.UnpicklingError as e:
        raise _refused(f, e) from None  # torch's text advises disabling the protection
    except OSError as e:
        raise unreadable(f, e, what=what) from e
    except Exception as e:
        why = str(e).splitlines()[0][:200] if str(e) else ""
        why = "" if "weights_only" in why else f": {why}"
        raise ModelLoadError(f"cannot read pickled checkpoint ({type(e).__name__}{why})",
                             where=str(f), fix="re-download or re-save the checkpoint"
                             ) from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in sd.items()):
        raise UnsafeCheckpointError("checkpoint is not a flat dict of tensors", where=str(f),
                                    fix="save the model's state_dict, or use safetensors")
    return sd


def _safetensors_index(p: Path, files: list[Path],
                       wanted: dict[str, Path]) -> dict[str, TensorInfo]:
    """Headers of every shard; with an index, each tensor from the shard the index names."""
    out: dict[str, TensorInfo] = {}
    for f in files:
        if wanted:
            _listed_file(p, f)
        for name, info in read_header(f)[0].items():
            if wanted.get(name, f) != f:
                continue
            if name in out:
                raise _twice(name, out[name].path, f)
            out[name] = info
    missing = sorted(set(wanted) - set(out))
    if missing:
        raise ModelLoadError(f"{len(missing)} tensors of the index are in no shard "
                             f"(first: {missing[0][:200]})", where=str(p / ST_INDEX),
                             fix="re-download the model")
    return out


def _listed_file(p: Path, f: Path) -> None:
    if not f.exists():
        raise ModelLoadError(f"shard {f.name} is listed in the index but missing",
                             where=str(p), fix="re-download the model")
    regular_file(f, what="weight file")


def _twice(name: str, a: Path, b: Path) -> ModelLoadError:
    return ModelLoadError(f"tensor {name[:200]!r} is stored twice, in {a.name} and {b.name}",
                          where=str(b.parent),
                          fix="keep one copy of the weights in the folder (or add an index "
                              "that names the shard to use)")


def _refused(f: Path, e: Exception) -> UnsafeCheckpointError:
    """kinmerge's own refusal: torch's message suggests turning the protection off."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    what = f" (it references {found[1]})" if found else ""
    return UnsafeCheckpointError(
        "refused to unpickle a checkpoint that holds more than plain tensors: loading it "
        f"could run code{what}", where=str(f),
        fix="convert it to safetensors where you trust its source, or get a safetensors copy")
