"""The docs' measured numbers (README.md, docs/results.md), regenerated: `make results`
reruns the documented experiments (`collect`) and rewrites the tables between marker
comments (`render`)."""
from tools.results.render import BLOCKS, block_text, replace_block, write_docs

__all__ = ["BLOCKS", "block_text", "replace_block", "write_docs"]
