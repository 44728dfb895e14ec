"""A Ray cluster of a head and worker nodes on this machine (ray.cluster_utils.Cluster), for
tests that remove a worker node while a kinmerge run uses it.

The head has no CPUs, so every job runs on a worker node; removing one while it holds a
trapped job (cluster_standins.trap) loses that job mid-run, as a crashed machine would.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
# what the workers import: kinmerge from this tree, the stand-in fitnesses beside the tests
WORKER_PATH = [str(SRC), str(HERE), str(HERE.parent / "evolve"), str(HERE.parent / "breed")]


class Kit:
    def __init__(self, workers: int = 2):
        from ray.cluster_utils import Cluster

        # a short path of its own: Ray's socket paths must fit in 107 bytes, and Ray's
        # "current cluster" file lands under RAY_TMPDIR, not in the shared /tmp/ray
        self.tmp = Path(tempfile.mkdtemp(prefix="kmc-", dir="/tmp"))
        self.trapdir = self.tmp / "trap"
        self.trapdir.mkdir()
        self._env = {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(self.tmp)}
        self._old = {k: os.environ.get(k) for k in self._env}
        os.environ.update(self._env)
        self.removed: list[str] = []
        with self._node_env():
            self.cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 0, "temp_dir": str(self.tmp / "ray"), "include_dashboard": False})
        self.want = workers
        self.ensure_workers()

    @property
    def address(self) -> str:
        return self.cluster.address

    @contextlib.contextmanager
    def _node_env(self):
        """The environment a node's processes inherit: the trap directory (workers only;
        the driver never traps) and this tree's sources."""
        env = {"KINMERGE_TEST_TRAP": str(self.trapdir), "OMP_NUM_THREADS": "1",
               "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join(WORKER_PATH + [os.environ.get("PYTHONPATH", "")])}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            _restore(old)

    def worker_ids(self) -> list[str]:
        return [n.node_id for n in self.cluster.worker_nodes]

    def ensure_workers(self) -> None:
        with self._node_env():
            while len(self.cluster.worker_nodes) < self.want:
                self.cluster.add_node(num_cpus=1)
        self.cluster.wait_for_nodes()

    def arm(self, split: str, k: int) -> None:
        """Trap the k-th call on `split` of the next run (and forget earlier calls)."""
        shutil.rmtree(self.trapdir)
        self.trapdir.mkdir()
        (self.trapdir / "arm").write_text(f"{split} {k}")

    def calls(self) -> list[tuple[str, str, str]]:
        f = self.trapdir / "calls"
        return [tuple(x.split()) for x in f.read_text().splitlines()] if f.exists() else []

    @contextlib.contextmanager
    def remove_trapped_node(self, timeout: float = 300.0):
        """While the body runs, remove the worker node holding the trapped job as soon as
        the trap fires; afterwards, the node's id is in self.removed."""
        stop = threading.Event()

        def watch() -> None:
            f = self.trapdir / "trapped"
            deadline = time.time() + timeout
            while not stop.is_set() and time.time() < deadline:
                if f.exists():
                    node_id = f.read_text()
                    node = next(n for n in self.cluster.worker_nodes if n.node_id == node_id)
                    self.cluster.remove_node(node)
                    self.removed.append(node_id)
                    return
                time.sleep(0.1)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()
            self.ensure_workers()

    def shutdown(self) -> None:
        try:
            self.cluster.shutdown()
        finally:
            _restore(self._old)
            shutil.rmtree(self.tmp, ignore_errors=True)


def _restore(old: dict) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
