"""Reading models (lazy, shard by shard), resolving hub ids, and writing sharded outputs."""
from kinmerge.io.reader import ModelReader
from kinmerge.io.writer import InMemorySink, ShardedWriter

__all__ = ["ModelReader", "ShardedWriter", "InMemorySink"]
