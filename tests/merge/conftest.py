"""Merge-test fixtures shared by the byte tests (thread count, device)."""
from __future__ import annotations

import pytest
from method_kit import build_family


@pytest.fixture(scope="module")
def big_family(tmp_path_factory):
    """A base and three fine-tunes per dtype whose reductions split (method_kit)."""
    return build_family(tmp_path_factory.mktemp("big-family"))
