"""The safetensors file format, read and written by hand.

Why not `safetensors.safe_open`: it memory-maps the file, and every page a merge touches
stays in the process's resident set until the map is closed, so RSS grows with model size.
Here each tensor is read with one positional read into its own buffer, which is freed with
the tensor. Writing is streamed too: the header is known before any tensor is computed (the
plan knows every output shape), so tensors go straight to disk in execution order.

Layout: 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then data.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from kinmerge.errors import ModelLoadError

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
CODES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file."""

    path: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # absolute byte offset in the file
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _corrupt(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"corrupt or truncated safetensors file: {why}",
        where=str(path),
        fix="re-download or re-save this file; a partial copy or an interrupted write does this",
    )


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse and validate the header; returns (tensors by name, metadata)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _corrupt(path, f"file is {size} bytes, too short for a header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise _corrupt(path, f"header length {n} does not fit a file of {size} bytes")
            raw = f.read(n)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path.name}: {e.strerror}", where=str(path),
                             fix="check the path and its permissions") from e
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    tensors: dict[str, TensorInfo] = {}
    end_max = 0
    for name, spec in header.items():
        try:
            dtype = DTYPES[spec["dtype"]]
            shape = tuple(int(d) for d in spec["shape"])
            begin, end = (int(x) for x in spec["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise _corrupt(path, f"tensor {name!r} has a malformed entry ({e!r})") from e
        expected = math.prod(shape) * dtype.itemsize
        if end - begin != expected or begin < 0:
            raise _corrupt(path, f"tensor {name!r}: {end - begin} bytes for shape {list(shape)} "
                                 f"of {spec['dtype']} (expected {expected})")
        tensors[name] = TensorInfo(path, dtype, shape, data_start + begin, expected)
        end_max = max(end_max, end)
    if data_start + end_max > size:
        raise _corrupt(path, f"header promises {end_max} bytes of data, the file holds "
                             f"{size - data_start}")
    return tensors, meta


def read_tensor(info: TensorInfo, fd: int | None = None) -> torch.Tensor:
    """Read one tensor with a positional read (no mmap); `fd` may be an open descriptor."""
    return read_range(info, 0, info.numel, fd).reshape(info.shape)


def read_range(info: TensorInfo, lo: int, hi: int, fd: int | None = None,
               into: bytearray | None = None) -> torch.Tensor:
    """Elements [lo, hi) of the row-major flattened tensor, as a 1-D tensor.

    With `into`, the bytes land in that reusable buffer (grown if too small) and the result
    is a view of it, valid until the buffer's next use; otherwise a fresh buffer is used.
    """
    size = info.dtype.itemsize
    nbytes = (hi - lo) * size
    if nbytes == 0:
        return torch.empty(0, dtype=info.dtype)
    if into is None:  # uninitialised: a zero-filled bytearray costs ~15% of the read time
        buf = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buf.numpy())
    else:
        if len(into) < nbytes:
            into.extend(bytes(nbytes - len(into)))
        buf, view = None, memoryview(into)[:nbytes]
    own = fd is None
    if own:
        fd = os.open(info.path, os.O_RDONLY)
    try:
        _pread_exactly(fd, view, info.begin + lo * size, info.path)
    finally:
        if own:
            os.close(fd)
    if buf is not None:
        return buf.view(info.dtype)
    return torch.frombuffer(into, dtype=info.dtype, count=hi - lo)


def _pread_exactly(fd: int, view: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise _corrupt(path, "file ended while reading tensor data")
        done += got


def header_bytes(entries: list[tuple[str, torch.dtype, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None) -> bytes:
    """The 8-byte length plus JSON header for tensors stored back to back in `entries` order.

    The JSON is padded with spaces to a multiple of 8 bytes, as the reference writer does, so
    tensor data stays aligned.
    """
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, dtype, shape in entries:
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": CODES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a CPU tensor, without a copy when it is contiguous."""
    t = t.detach().contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.view(torch.uint8).reshape(-1).numpy())
