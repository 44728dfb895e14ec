"""Reading models (lazy, shard by shard), resolving hub ids, and writing sharded outputs."""
from typing import TYPE_CHECKING

from kinmerge._lazy import lazy_attributes

if TYPE_CHECKING:
    from kinmerge.io.reader import ModelReader
    from kinmerge.io.writer import InMemorySink, ShardedWriter

__all__ = ["ModelReader", "ShardedWriter", "InMemorySink"]

# loaded on first use: the YAML and path helpers here are read by commands that need no torch
__getattr__, __dir__ = lazy_attributes(globals(), {
    "ModelReader": "kinmerge.io.reader",
    "ShardedWriter": "kinmerge.io.writer", "InMemorySink": "kinmerge.io.writer"})
