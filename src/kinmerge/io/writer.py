"""Where merged tensors go: sharded safetensors on disk, or a dict in memory.

Both are sinks with one method, `add(name, tensor)`. The disk writer knows every output
tensor's name, dtype and shape before the first one arrives (the plan does), so each shard's
header is written first and tensors are streamed after it: memory holds one tensor, not a shard.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kinmerge.io.dtype import Dtype, as_dtype
from kinmerge.io.safetensors_file import header_bytes, tensor_bytes
from kinmerge.io.shards import INDEX, assign_shards, shard_names

if TYPE_CHECKING:  # a plan's writer is made from names; tensors arrive with torch
    import torch

Entry = tuple[str, Dtype, tuple[int, ...]]  # a torch dtype is taken too


class Sink(Protocol):
    def add(self, name: str, tensor: torch.Tensor) -> None: ...


class InMemorySink:
    """Keeps merged tensors in a dict (for evolution, which scores merges without disk I/O)."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self.tensors[name] = tensor


class ShardedWriter:
    """Writes tensors, which must arrive in `entries` order, into HF-named shards in `out_dir`.

    >>> w = ShardedWriter(d, [("a", torch.float32, (2,))], max_shard_bytes=10**9)  # doctest: +SKIP
    >>> w.add("a", torch.zeros(2)); w.close()                                        # doctest: +SKIP
    """

    def __init__(self, out_dir: Path, entries: list[Entry], max_shard_bytes: int,
                 metadata: dict[str, str] | None = None):
        self.out_dir = Path(out_dir)
        self.entries = [(n, as_dtype(d), tuple(s)) for n, d, s in entries]
        sizes = [math.prod(s) * d.itemsize for _, d, s in self.entries]
        self.total_size = sum(sizes)
        self.shard_of = assign_shards(sizes, max_shard_bytes)
        n = (self.shard_of[-1] + 1) if self.entries else 1
        self.files = shard_names(n)
        self.metadata = metadata
        self._next = 0
        self._fh = None
        self._open_shard = -1

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self.entries):
            raise RuntimeError(f"unexpected tensor {name!r}: all planned tensors were written")
        want, dtype, shape = self.entries[self._next]
        if name != want or tensor.dtype != dtype.torch or tuple(tensor.shape) != shape:
            raise RuntimeError(f"writer expected {want} {dtype.torch} {list(shape)}, got {name} "
                               f"{tensor.dtype} {list(tensor.shape)}")
        shard = self.shard_of[self._next]
        if shard != self._open_shard:
            self._start(shard)
        self._fh.write(tensor_bytes(tensor.cpu()))
        self._next += 1

    def _start(self, shard: int) -> None:
        if self._fh:
            self._fh.close()
        members = [e for e, s in zip(self.entries, self.shard_of) if s == shard]
        self._fh = open(self.out_dir / self.files[shard], "wb")
        self._fh.write(header_bytes(members, self.metadata))
        self._open_shard = shard

    def close(self) -> list[str]:
        """Finish the last shard and write the index; returns the files written."""
        if self._next != len(self.entries):
            missing = self.entries[self._next][0]
            raise RuntimeError(f"writer closed before tensor {missing!r} was written")
        if not self.entries:
            self._start(0)
        if self._fh:
            self._fh.close()
            self._fh = None
        if len(self.files) > 1:
            index = {"metadata": {"total_size": self.total_size},
                     "weight_map": {e[0]: self.files[s] for e, s in zip(self.entries, self.shard_of)}}
            (self.out_dir / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        return self.files + ([INDEX] if len(self.files) > 1 else [])

    def abort(self) -> None:
        """Close a shard left open by a failure (a no-op after `close`)."""
        if self._fh:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:
                pass  # the failure being unwound (disk full) says it better
