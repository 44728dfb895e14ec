"""The tiny zoo (seconds to build; untrained, for files, loading and determinism)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    from kinmerge.zoo import ZooConfig, build_zoo
    return build_zoo(tmp_path_factory.mktemp("zoo") / "a", ZooConfig.tiny(), seed=0)
