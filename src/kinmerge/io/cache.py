"""Source tensors kept across merges in one worker process, within a byte budget.

An evolution worker merges candidate after candidate from the same source models; reading
every source again for each one costs as much as the merge itself at real sizes. A
`TensorCache` keeps the tensors it reads (as stored, on the merge's device) up to `budget`
bytes, and `CachedReader` hands them to the ordinary plan/execute path in place of a fresh
read, so a cached merge is the same computation, byte for byte, as an uncached one.

Rules: a tensor is admitted while it fits the budget; a full cache first drops the tensors of
models the current merge does not use, and otherwise leaves the rest to be read each time (a
scan over more than the budget keeps the tensors it holds, where least-recently-used would
evict each one just before it is needed again). A model's weight files are stamped (inode,
size, mtime) when a merge opens it: a model rewritten in place is read afresh. Tensors handed
out are shared with the cache: the merge core never writes into its inputs, and never returns
one of them as an output (kinmerge.core.execute copies such an output).

>>> cache = TensorCache(8 * 10**9, "cuda")                                # doctest: +SKIP
>>> kinmerge.merge_to_memory(recipe, device="cuda", cache=cache)         # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

Stamp = tuple  # (ref, folder, ((file, inode, size, mtime_ns), ...))


class TensorCache:
    """Tensors of source models by (model stamp, tensor name), at most `budget` bytes."""

    def __init__(self, budget: int, device: str | torch.device = "cpu"):
        if budget < 0:
            raise ValueError("a cache budget is a number of bytes >= 0")
        self.budget, self.device = int(budget), torch.device(device)
        self._entries: dict[tuple[Stamp, str], torch.Tensor] = {}
        self._active: set[Stamp] = set()
        self.bytes = self.hits = self.misses = 0

    def open(self, readers: dict[str, Any]) -> dict[str, "CachedReader"]:
        """Wrap one merge's readers; the models they hold become the active ones (the
        tensors of a rewritten model, under an old stamp, are dropped now)."""
        wrapped = {ref: CachedReader(r, self, _stamp(r)) for ref, r in readers.items()}
        self._active = {w.stamp for w in wrapped.values()}
        stale = {w.stamp[:2] for w in wrapped.values()}
        self._drop(lambda s: s[:2] in stale and s not in self._active)
        return wrapped

    def get(self, reader: "CachedReader", name: str) -> torch.Tensor:
        key = (reader.stamp, name)
        t = self._entries.get(key)
        if t is not None:
            self.hits += 1
            return t
        self.misses += 1
        t = reader.reader.get(name)
        size = t.numel() * t.element_size()
        if size > self.budget - self.bytes:
            self._drop(lambda s: s not in self._active)  # room from models not in use
        if size <= self.budget - self.bytes:
            t = t.to(self.device)
            self._entries[key] = t
            self.bytes += size
        return t

    def clear(self) -> None:
        self._drop(lambda s: True)

    def _drop(self, which) -> None:
        for key in [k for k in self._entries if which(k[0])]:
            t = self._entries.pop(key)
            self.bytes -= t.numel() * t.element_size()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (f"TensorCache({len(self)} tensors, {self.bytes / 1e9:.2f} of "
                f"{self.budget / 1e9:.2f} GB on {self.device}, {self.hits} hits, "
                f"{self.misses} misses)")


class CachedReader:
    """A model reader whose `get` goes through a TensorCache; everything else is the
    reader's own (names, shapes, dtypes, config, path)."""

    def __init__(self, reader: Any, cache: TensorCache, stamp: Stamp):
        self.reader, self.cache, self.stamp = reader, cache, stamp

    def get(self, name: str) -> torch.Tensor:
        return self.cache.get(self, name)

    def held(self, name: str) -> bool:
        """`get(name)` will not read (the executor skips reading it ahead)."""
        return (self.stamp, name) in self.cache._entries

    def __contains__(self, name: str) -> bool:
        return name in self.reader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.reader, attr)

    def close(self) -> None:
        self.reader.close()

    def __repr__(self) -> str:
        return f"CachedReader({self.reader!r})"


def _stamp(reader: Any) -> Stamp:
    """What identifies a model's weights on disk now: its reference, folder and the files
    its tensors come from (an adapter's folder too, for `base+lora`)."""
    files: list[tuple] = []
    adapter = getattr(reader, "adapter", None)
    folders = [Path(reader.path)] + ([Path(adapter.file).parent] if adapter is not None else [])
    for folder in folders:
        for f in sorted(folder.iterdir()) if folder.is_dir() else []:
            if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".json"):
                st = os.stat(f)
                files.append((f.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return (str(getattr(reader, "ref", reader.path)), str(reader.path), tuple(files))
