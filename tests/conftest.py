"""Shared fixtures: single-threaded torch, no hub access, tiny synthetic model families."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from kinmerge.zoo.synthetic import synthetic_llama  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` run only with KINMERGE_SLOW=1 (the default suite stays minutes)."""
    if os.environ.get("KINMERGE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set KINMERGE_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def family(tmp_path_factory):
    """A float32 Llama base and three fine-tunes (3 layers, tiny shapes) on disk."""
    root = tmp_path_factory.mktemp("family")
    base = synthetic_llama(root / "base", layers=3, hidden=16, intermediate=24, vocab=40, seed=0)
    fts = [synthetic_llama(root / f"ft{i}", layers=3, hidden=16, intermediate=24, vocab=40,
                           base=base, seed=i, delta=0.05) for i in (1, 2, 3)]
    return {"base": str(base), "ft": [str(f) for f in fts], "root": root}


@pytest.fixture(scope="session")
def family_bf16(tmp_path_factory):
    """The same family stored in bfloat16."""
    root = tmp_path_factory.mktemp("family_bf16")
    kw = dict(layers=3, hidden=16, intermediate=24, vocab=40, dtype=torch.bfloat16)
    base = synthetic_llama(root / "base", seed=0, **kw)
    fts = [synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **kw) for i in (1, 2)]
    return {"base": str(base), "ft": [str(f) for f in fts], "root": root}
