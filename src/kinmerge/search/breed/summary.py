"""Breeding's typed results: each generation's record and the run's summary (defined in
kinmerge.io.breed_summary, below the report that reads them back)."""
from kinmerge.io.breed_summary import (FILE, MAX_SUMMARY, BreedSummary, Generation, Merge,
                                       read_summary)

__all__ = ["FILE", "MAX_SUMMARY", "BreedSummary", "Generation", "Merge", "read_summary"]
