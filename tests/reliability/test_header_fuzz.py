"""Property-based fuzzing of the safetensors header parser and the model reader (issue 10).

Random bytes, random JSON headers, and valid files mutated one field at a time: whatever the
bytes, `read_header` and `ModelReader` either work (and then every tensor reads back, inside
the file) or raise a KinmergeError. Any other exception, or a hang, is a failure.
200 examples per property by default (1,000 in all, ~5 s), 5,000 each with KINMERGE_SLOW=1.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from kinmerge.errors import KinmergeError
from kinmerge.io.reader import ModelReader
from kinmerge.io.safetensors_file import DTYPES, KNOWN_UNSUPPORTED, header_bytes, read_header

SLOW = os.environ.get("KINMERGE_SLOW") == "1"
FUZZ = settings(max_examples=5000 if SLOW else 200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=False), st.text(max_size=12))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
dtype_code = st.sampled_from([*DTYPES, *KNOWN_UNSUPPORTED, "F128", "", "f32"])
shape = st.lists(st.integers(0, 5), max_size=3)


@st.composite
def valid_file(draw) -> tuple[dict, bytes]:
    """A well-formed header (as a dict) and its data bytes."""
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True))
    entries = [(n, DTYPES[draw(st.sampled_from(list(DTYPES)))], tuple(draw(shape)))
               for n in names]
    raw = header_bytes(entries)
    header = json.loads(raw[8:])
    nbytes = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    return header, draw(st.binary(min_size=nbytes, max_size=nbytes))


@st.composite
def mutated_file(draw) -> bytes:
    """A valid file with one thing broken: a field's value, the data length, the length word."""
    header, data = draw(valid_file())
    names = [k for k in header if k != "__metadata__"]
    how = draw(st.sampled_from(["field", "entry", "metadata", "data", "length", "extra"]))
    name = draw(st.sampled_from(names))
    if how == "field":
        key = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[name][key] = draw(st.one_of(json_value, dtype_code, shape,
                                           st.lists(st.integers(-3, 2**66), max_size=3)))
    elif how == "entry":
        header[name] = draw(json_value)
    elif how == "metadata":
        header["__metadata__"] = draw(json_value)
    elif how == "extra":  # a second tensor over the same or other bytes
        header[name + "'"] = {**header[name], "data_offsets": draw(st.lists(
            st.integers(0, len(data) + 8), min_size=2, max_size=2))}
    raw = json.dumps(header).encode()
    length = len(raw)
    if how == "length":
        length = draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, len(raw) + 16)))
    elif how == "data":
        data = data[:draw(st.integers(0, len(data)))] if draw(st.booleans()) else data + b"\0"
    return struct.pack("<Q", length) + raw + data


def check(f: Path) -> None:
    """The property: a KinmergeError, or a header whose every tensor reads back."""
    try:
        tensors, meta = read_header(f)
    except KinmergeError:
        return
    size = f.stat().st_size
    for info in tensors.values():
        assert info.begin + info.nbytes <= size and info.dtype in DTYPES.values()
    try:
        with ModelReader(f.parent) as r:
            for n in r.names():
                assert r.get(n).shape == tuple(r.shape(n))
    except KinmergeError:
        pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Iterator[Path]:
    """A scratch folder in memory when there is one: a file write there costs ~30 us, on a
    disk-backed /tmp milliseconds, which would be most of the fuzzers' time."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="kinmerge-fuzz-") as d:
            yield Path(d)
    else:
        yield tmp_path_factory.mktemp("fuzz")


def write(folder: Path, blob: bytes) -> Path:
    f = folder / "model.safetensors"
    f.write_bytes(blob)
    return f


@FUZZ
@given(blob=st.binary(max_size=256))
def test_random_bytes(folder, blob):
    check(write(folder, blob))


@FUZZ
@given(header=st.dictionaries(st.text(max_size=8), json_value, max_size=5),
       data=st.binary(max_size=64))
def test_random_json_headers(folder, header, data):
    raw = json.dumps(header).encode()
    check(write(folder, struct.pack("<Q", len(raw)) + raw + data))


@FUZZ
@given(blob=mutated_file())
def test_mutated_valid_files(folder, blob):
    check(write(folder, blob))


@FUZZ
@given(valid=valid_file())
def test_valid_files_read_back(folder, valid):
    header, data = valid
    raw = json.dumps(header).encode()
    f = write(folder, struct.pack("<Q", len(raw)) + raw + data)
    tensors, _ = read_header(f)  # no error allowed: the file is well-formed
    assert set(tensors) == set(header) - {"__metadata__"}
    with ModelReader(folder) as r:
        for name, spec in header.items():
            if name != "__metadata__":
                t = r.get(name)
                b, e = spec["data_offsets"]
                assert t.shape == tuple(spec["shape"])
                assert t.reshape(-1).view(torch.uint8).numpy().tobytes() == data[b:e]


@FUZZ
@given(index=json_value, config=json_value)
def test_random_index_and_config(folder, index, config):
    """Any index.json and config.json beside a valid shard: the reader works or refuses."""
    d = folder / "indexed"
    d.mkdir(exist_ok=True)
    (d / "model.safetensors").write_bytes(header_bytes([("x", torch.float32, (1,))]) + bytes(4))
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    (d / "config.json").write_text(json.dumps(config))
    try:
        with ModelReader(d) as r:
            for n in r.names():
                r.get(n)
    except KinmergeError:
        pass
