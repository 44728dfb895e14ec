"""Evolution's fitness is kinmerge.evaluate's (one interface for evolve, breed and soup)."""
from kinmerge.evaluate.fitness import Fitness, Split, TaskFitness  # noqa: F401

BATCH = 256  # the zoo's prompts are short: larger batches generate faster on a CPU
