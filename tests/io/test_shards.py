"""Pure shard planners and the streaming writer, with golden names."""
import pytest
import torch
from safetensors.torch import load_file

from kinmerge.errors import KinmergeError
from kinmerge.io.shards import assign_shards, parse_size, shard_names
from kinmerge.io.writer import ShardedWriter


def test_shard_names_golden():
    assert shard_names(1) == ["model.safetensors"]
    assert shard_names(3) == ["model-00001-of-00003.safetensors",
                              "model-00002-of-00003.safetensors",
                              "model-00003-of-00003.safetensors"]


def test_assign_shards():
    assert assign_shards([4, 4, 4, 4], 8) == [0, 0, 1, 1]
    assert assign_shards([4, 10, 1], 8) == [0, 1, 2]  # oversize tensor gets its own shard
    assert assign_shards([1, 2, 3], 100) == [0, 0, 0]
    assert assign_shards([], 8) == []


@pytest.mark.parametrize("text,n", [("1B", 10**9), ("500M", 5 * 10**8), ("2GiB", 2 * 2**30),
                                    ("1000", 1000), ("1.5G", 1_500_000_000), (77, 77)])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "big", "-1B", "0", "5X"])
def test_parse_size_rejects(text):
    with pytest.raises(KinmergeError, match="not a shard size"):
        parse_size(text)


def test_writer_streams_in_order_and_refuses_surprises(tmp_path):
    entries = [("b", torch.float32, (2,)), ("a", torch.bfloat16, (3, 1))]
    w = ShardedWriter(tmp_path, entries, 10**9)
    w.add("b", torch.ones(2))
    with pytest.raises(RuntimeError, match="expected a torch.bfloat16"):
        w.add("a", torch.ones(3, 1))
    w.add("a", torch.ones(3, 1).bfloat16())
    assert w.close() == ["model.safetensors"]
    sd = load_file(tmp_path / "model.safetensors")
    assert torch.equal(sd["b"], torch.ones(2)) and sd["a"].dtype == torch.bfloat16
