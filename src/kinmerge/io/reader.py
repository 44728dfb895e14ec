"""Lazy access to a model's tensors, one at a time, whatever its storage.

Supported layouts: `model.safetensors`, sharded `*.safetensors` with
`model.safetensors.index.json`, and pickled `pytorch_model*.bin` (read with weights-only
unpickling: a file that holds anything but tensors is refused, never executed).
"""
from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import torch

from kinmerge.errors import ModelLoadError, UnsafeCheckpointError
from kinmerge.io.hub import resolve_model
from kinmerge.io.safetensors_file import TensorInfo, read_header, read_range, read_tensor


class ModelReader:
    """A model directory opened lazily: headers are read up front, tensors on demand.

    >>> with ModelReader("path/to/model") as m:            # doctest: +SKIP
    ...     w = m.get("model.layers.0.self_attn.q_proj.weight")
    """

    def __init__(self, ref: str | os.PathLike):
        self.ref = str(ref)
        self.path = resolve_model(ref)
        self.config: dict = _read_config(self.path)
        self._st: dict[str, TensorInfo] = {}
        self._bin: dict[str, Path] = {}
        self._fds: dict[Path, int] = {}
        self._bin_cache: tuple[Path, dict] | None = None
        self._index()

    # --- discovery -------------------------------------------------------------------------
    def _index(self) -> None:
        p = self.path
        st_index = p / "model.safetensors.index.json"
        wanted = _weight_map(st_index) if st_index.exists() else {}
        files = sorted({p / s for s in wanted.values()}) or sorted(p.glob("*.safetensors"))
        if files:
            for f in files:
                if not f.exists():
                    raise ModelLoadError(f"shard {f.name} is listed in the index but missing",
                                         where=str(p), fix="re-download the model")
                self._st.update(read_header(f)[0])
            missing = sorted(set(wanted) - set(self._st))
            if missing:
                raise ModelLoadError(f"{len(missing)} tensors of the index are in no shard "
                                     f"(first: {missing[0]})", where=str(st_index),
                                     fix="re-download the model")
            return
        bins = sorted(p.glob("*.bin"))
        bin_index = p / "pytorch_model.bin.index.json"
        if bin_index.exists():
            self._bin = {n: p / s for n, s in _weight_map(bin_index).items()}
        else:
            for f in bins:
                for name in self._load_bin(f):
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
        try:
            # weights_only: the unpickler builds tensors and containers, nothing else
            sd = torch.load(f, map_location="cpu", weights_only=True,
                            mmap=zipfile.is_zipfile(f))  # legacy pickles cannot be mapped
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(
                "refused to unpickle a checkpoint that holds more than plain tensors "
                f"(it may run code when loaded): {str(e).splitlines()[0]}",
                where=str(f),
                fix="convert it to safetensors where you trust it, or get a safetensors copy")
        except Exception as e:
            raise ModelLoadError(f"cannot read pickled checkpoint: {type(e).__name__}: {e}",
                                 where=str(f), fix="re-download or re-save the checkpoint") from e
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise UnsafeCheckpointError("checkpoint is not a flat dict of tensors", where=str(f),
                                        fix="save the model's state_dict, or use safetensors")
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
        return tuple(self._load_bin(self._bin_file(name))[name].shape)

    def dtype(self, name: str) -> torch.dtype:
        if name in self._st:
            return self._st[name].dtype
        return self._load_bin(self._bin_file(name))[name].dtype

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
        return self._load_bin(self._bin_file(name))[name].clone()

    def read_flat(self, name: str, lo: int, hi: int,
                  into: bytearray | None = None) -> torch.Tensor:
        """Elements [lo, hi) of tensor `name` flattened, without reading the rest (safetensors).

        With `into`, the data lands in that reusable buffer and the result is a view of it.
        A pickled checkpoint's tensor is loaded whole once (its shard is cached) and sliced.
        """
        if name in self._st:
            info = self._st[name]
            return read_range(info, lo, hi, self._fd(info.path), into)
        return self._load_bin(self._bin_file(name))[name].reshape(-1)[lo:hi]

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY)
        return fd

    def _bin_file(self, name: str) -> Path:
        if name not in self._bin:
            raise ModelLoadError(f"tensor {name!r} not found", where=str(self.path),
                                 fix="check that all models share one architecture")
        return self._bin[name]

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


def open_model(ref: str | os.PathLike) -> ModelReader:
    """Open a model directory or hub id lazily."""
    return ModelReader(ref)


def _read_config(path: Path) -> dict:
    f = path / "config.json"
    if not f.exists():
        return {}
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"config.json is not valid JSON: {e}", where=str(f),
                             fix="repair or re-download config.json") from e


def _weight_map(index: Path) -> dict[str, str]:
    try:
        return dict(json.loads(index.read_text())["weight_map"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelLoadError(f"index file has no valid weight_map: {e!r}", where=str(index),
                             fix="re-download the model") from e
