"""Reading models (lazy, shard by shard), resolving hub ids, and writing sharded outputs."""
from kinmerge.io.reader import ModelReader, open_model
from kinmerge.io.writer import InMemorySink, ShardedWriter

__all__ = ["ModelReader", "open_model", "ShardedWriter", "InMemorySink"]
