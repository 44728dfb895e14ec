"""RayRunner leaves a user's cluster's auth settings alone: RAY_AUTH_MODE=disabled is set only
around starting the local instance it owns, and only if the user set no mode (a stand-in
`ray` module records what ray.init saw)."""
from __future__ import annotations

import os
import sys
import types

import pytest

from kinmerge.search.runners import RayRunner


@pytest.fixture
def fake_ray(monkeypatch):
    seen = []
    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: False
    ray.init = lambda **kw: seen.append((kw.get("address"), os.environ.get("RAY_AUTH_MODE")))
    ray.remote = lambda **kw: (lambda fn: fn)
    ray.shutdown = lambda: None
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    return seen


def test_a_users_cluster_gets_no_auth_override(fake_ray):
    RayRunner(2, address="ray://head:10001").close()
    assert fake_ray == [("ray://head:10001", None)]
    assert "RAY_AUTH_MODE" not in os.environ


def test_the_local_instance_starts_without_a_token_and_the_variable_is_restored(fake_ray):
    RayRunner(2).close()
    assert fake_ray == [(None, "disabled")]
    assert "RAY_AUTH_MODE" not in os.environ


def test_a_mode_the_user_set_is_kept(fake_ray, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    RayRunner(2).close()
    assert fake_ray == [(None, "token")] and os.environ["RAY_AUTH_MODE"] == "token"
