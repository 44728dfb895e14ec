"""Lineage: every merged model knows its parents, recipe, seed, kinship and scores."""
from kinmerge.lineage.record import (FILE, Lineage, LineageRecord, for_merge, of_parent, read,
                                     root_id, update, write)

__all__ = ["FILE", "Lineage", "LineageRecord", "for_merge", "of_parent", "read", "root_id",
           "update", "write"]
