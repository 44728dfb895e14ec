"""Offline model families: synthetic checkpoints (random weights, any size) for tests and
benchmarks, and the trained tiny family used by the demo."""
from kinmerge.zoo.synthetic import synthetic_llama

__all__ = ["synthetic_llama"]
