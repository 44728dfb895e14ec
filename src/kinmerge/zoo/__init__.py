"""Offline model families: synthetic checkpoints (random weights, any size) for tests and
benchmarks, and the trained tiny family ("the zoo") used by the demo, evolution and tests."""
from kinmerge.zoo.cache import zoo
from kinmerge.zoo.family import Expert, ZooConfig, build_zoo
from kinmerge.zoo.synthetic import synthetic_llama

__all__ = ["Expert", "ZooConfig", "build_zoo", "synthetic_llama", "zoo"]
