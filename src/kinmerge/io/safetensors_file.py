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
from typing import TYPE_CHECKING

from kinmerge.errors import ModelLoadError
from kinmerge.io.dtype import BY_CODE, Dtype, as_dtype
from kinmerge.io.safe_path import regular_file, unreadable

if TYPE_CHECKING:  # headers are read without torch; tensors (read_range) import it
    import torch

DTYPES: dict[str, Dtype] = dict(BY_CODE)  # safetensors code -> dtype
# legal in the safetensors format, but no merge method here computes on them
KNOWN_UNSUPPORTED = ("F8_E4M3", "F8_E4M3FNUZ", "F8_E5M2", "F8_E5M2FNUZ", "F8_E8M0", "F6_E2M3",
                     "F6_E3M2", "F4", "U16", "U32", "U64", "C64")
MAX_HEADER = 100 * 1024 * 1024
MAX_DIMS = 64  # torch's own limit on a tensor's dimensions


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file."""

    path: Path
    dtype: Dtype
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
    """Parse and validate the header; returns (tensors by name, metadata).

    Whatever the bytes, the only exception is a ModelLoadError: entries must be objects with
    a dtype kinmerge supports, a shape of non-negative integers, and data offsets that match
    the shape, lie inside the file and overlap no other tensor's.
    """
    path = Path(path)
    size = regular_file(path, what="weight file").st_size  # a FIFO would block open() forever
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _corrupt(path, f"file is {size} bytes, too short for a header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise _corrupt(path, f"header length {n} does not fit a file of {size} bytes")
            raw = f.read(n)
    except OSError as e:
        raise unreadable(path, e, what="weight file") from e
    header = _parse_json(path, raw)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise _corrupt(path, "__metadata__ is not a JSON object")
    data_start = 8 + n
    tensors = {name: _entry(path, name, spec, data_start) for name, spec in header.items()}
    _check_layout(path, tensors, data_start, size)
    return tensors, meta


def _parse_json(path: Path, raw: bytes) -> dict:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise _corrupt(path, f"name {k[:200]!r} appears twice in one header object")
            out[k] = v
        return out

    try:
        header = json.loads(raw, object_pairs_hook=no_duplicates)
    except ValueError as e:  # bad UTF-8, bad JSON, an integer of over 4300 digits
        raise _corrupt(path, f"header is not valid JSON ({str(e)[:200]})") from e
    except RecursionError as e:
        raise _corrupt(path, "header JSON is nested too deeply") from e
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    return header


def _entry(path: Path, name: str, spec: object, data_start: int) -> TensorInfo:
    """One header entry checked: every field with the type and range the format demands."""
    what = f"tensor {name[:200]!r}"
    if not isinstance(spec, dict):
        raise _corrupt(path, f"{what} has a malformed entry (a {type(spec).__name__}, "
                             "not an object)")
    code, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if not isinstance(code, str) or code not in DTYPES:
        if isinstance(code, str) and code in KNOWN_UNSUPPORTED:
            raise ModelLoadError(
                f"{what} has dtype {code}, which is not supported by kinmerge "
                f"(supported: {', '.join(DTYPES)})", where=str(path),
                fix="convert the model to bfloat16, float16 or float32 first (e.g. load it in "
                    "transformers and save_pretrained with that torch_dtype)")
        raise _corrupt(path, f"{what} has an unknown dtype {str(code)[:40]!r}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(_is_count(d) for d in shape)):
        raise _corrupt(path, f"{what} has shape {str(shape)[:80]}, not a list of "
                             "non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise _corrupt(path, f"{what} has data_offsets {str(offsets)[:80]}, not "
                             "[begin, end] with 0 <= begin <= end")
    dtype, (begin, end) = DTYPES[code], offsets
    expected = math.prod(shape) * dtype.itemsize
    if end - begin != expected:
        raise _corrupt(path, f"{what}: {end - begin} bytes for shape {shape} of {code} "
                             f"(expected {expected})")
    return TensorInfo(path, dtype, tuple(shape), data_start + begin, expected)


def _is_count(x: object) -> bool:
    return type(x) is int and x >= 0  # bool is an int subclass: `true` is not a dimension


def _check_layout(path: Path, tensors: dict[str, TensorInfo], data_start: int,
                  size: int) -> None:
    """Every tensor's bytes inside the file, no two tensors sharing a byte."""
    end_max = max((i.begin + i.nbytes for i in tensors.values()), default=data_start)
    if end_max > size:
        raise _corrupt(path, f"header promises {end_max - data_start} bytes of data, the file "
                             f"holds {size - data_start}")
    prev: tuple[str, int] | None = None
    for name, info in sorted(tensors.items(), key=lambda kv: kv[1].begin):
        if not info.nbytes:
            continue
        if prev is not None and info.begin < prev[1]:
            raise _corrupt(path, f"tensors {prev[0][:200]!r} and {name[:200]!r} overlap in "
                                 "the file's data")
        prev = (name, info.begin + info.nbytes)


def read_tensor(info: TensorInfo, fd: int | None = None) -> torch.Tensor:
    """Read one tensor with a positional read (no mmap); `fd` may be an open descriptor."""
    return read_range(info, 0, info.numel, fd).reshape(info.shape)


def read_range(info: TensorInfo, lo: int, hi: int, fd: int | None = None,
               into: bytearray | None = None) -> torch.Tensor:
    """Elements [lo, hi) of the row-major flattened tensor, as a 1-D tensor.

    With `into`, the bytes land in that reusable buffer (grown if too small) and the result
    is a view of it, valid until the buffer's next use; otherwise a fresh buffer is used.
    """
    import torch

    size, dtype = info.dtype.itemsize, info.dtype.torch
    nbytes = (hi - lo) * size
    if nbytes == 0:
        return torch.empty(0, dtype=dtype)
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
        return buf.view(dtype)
    return torch.frombuffer(into, dtype=dtype, count=hi - lo)


def _pread_exactly(fd: int, view: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(view):
        try:
            got = os.preadv(fd, [view[done:]], offset + done)
        except OSError as e:  # EIO on a failing disk, a file truncated under us
            raise unreadable(path, e, what="weight file") from e
        if got <= 0:
            raise _corrupt(path, "file ended while reading tensor data")
        done += got


def header_bytes(entries: list[tuple[str, Dtype | torch.dtype, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None) -> bytes:
    """The 8-byte length plus JSON header for tensors stored back to back in `entries` order.

    The JSON is padded with spaces to a multiple of 8 bytes, as the reference writer does, so
    tensor data stays aligned.
    """
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, dtype, shape in entries:
        dtype = as_dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": dtype.code, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a CPU tensor, without a copy when it is contiguous."""
    import torch

    t = t.detach().contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.view(torch.uint8).reshape(-1).numpy())
