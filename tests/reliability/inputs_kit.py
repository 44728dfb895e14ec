"""Helpers of the input-side reliability tests: tiny models, hand-made safetensors files, the CLI
(imported by name: other engineers own other files of this folder)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kinmerge.cli import main
from kinmerge.zoo.synthetic import synthetic_llama

TINY = dict(layers=2, hidden=8, intermediate=8, vocab=8, heads=2)


@pytest.fixture
def tiny(tmp_path):
    """A base and one fine-tune, tiny, in a fresh folder per test (tests edit them)."""
    base = synthetic_llama(tmp_path / "models" / "base", seed=0, **TINY)
    ft = synthetic_llama(tmp_path / "models" / "ft1", base=base, seed=1, **TINY)
    (base / "tokenizer.json").write_text('{"tok": "base"}')
    return {"base": base, "ft": ft, "root": tmp_path}


def st_bytes(header: dict, data: bytes = b"") -> bytes:
    """A safetensors file with this exact header JSON (no checks) followed by `data`."""
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def recipe(tmp_path: Path, base, *models, method="task_arithmetic", name="r.yml",
           **extra) -> Path:
    """A recipe file merging `models` onto `base` with weight 1."""
    r = {"merge_method": method, "base_model": str(base),
         "models": [{"model": str(m), "parameters": {"weight": 1.0}} for m in models], **extra}
    f = tmp_path / name
    f.write_text(yaml.safe_dump(r))
    return f


def cli(*args, prog=main):
    """Run a click command; returns the result (exit_code, output with stderr)."""
    return CliRunner().invoke(prog, [str(a) for a in args])


def assert_clean_failure(result, *texts):
    """Exit 2, each text in the output, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for t in texts:
        assert t in result.output, (t, result.output)
