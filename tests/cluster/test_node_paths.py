"""Where models live on a cluster: the run's local paths must be seen by every node; a Ray
task on a node that does not see one fails at once with one error naming the node and the
path (no retry, no hang). The multi-node runs themselves are in test_ray_cluster (slow)."""
from __future__ import annotations

import os
import socket
import time

import pytest

from kinmerge.errors import KinmergeError
from kinmerge.search.runners import NodePathError, RayRunner, shared_paths


def test_shared_paths_are_the_local_ones(family, tmp_path):
    lora = tmp_path / "adapter"
    lora.mkdir()
    refs = [family["base"], "org/some-model", None, f"{family['ft'][0]}+{lora}",
            family["base"], str(tmp_path)]
    assert shared_paths(refs) == (family["base"], family["ft"][0], str(lora), str(tmp_path))


def test_node_path_error_survives_pickling():
    import pickle

    e = pickle.loads(pickle.dumps(NodePathError("/models/ft1", "node-7 (10.0.0.7)")))
    assert isinstance(e, KinmergeError) and (e.path, e.node) == ("/models/ft1", "node-7 (10.0.0.7)")
    assert str(e).splitlines()[0] == ("node node-7 (10.0.0.7) cannot see /models/ft1: every node "
                                      "of the cluster must see the run's model paths and its "
                                      "output folder at the same place")
    assert "fix: put the models and --out on a filesystem every node mounts" in str(e)


def test_a_node_that_cannot_see_a_path_fails_at_once(tmp_path, monkeypatch):
    """A Ray task checks the run's paths on its node before the job runs: a missing one is
    the job's error (the job never starts, nothing is retried), named by node and path."""
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    seen, unseen = tmp_path / "models", tmp_path / "not-mounted-here"
    seen.mkdir()
    runner = RayRunner(1, shared=(str(seen),))
    try:
        assert runner.submit(os.path.isdir, str(seen)).result(timeout=120) is True  # control
        runner._shared = (str(seen), str(unseen))  # as if this node lacked the mount
        t0 = time.perf_counter()
        with pytest.raises(NodePathError) as info:
            runner.submit(os.mkdir, str(tmp_path / "ran")).result(timeout=60)
        took = time.perf_counter() - t0
    finally:
        runner.close()
    e = info.value
    assert type(e) is NodePathError and e.path == str(unseen)  # the cause, not Ray's wrapper
    assert e.node.startswith(socket.gethostname()) and "Ray node " in e.node
    assert not (tmp_path / "ran").exists()  # the job itself never ran
    assert took < 20, f"{took:.1f} s: the error should come at once, not after retries"
