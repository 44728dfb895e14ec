"""Vocabularies of merged models: `tokenizer_source` and the `tokenizer:` block.

spec.py   the recipe keys (pydantic) and their static checks
vocab.py  one model's vocabulary, read from its tokenizer files
build.py  the output vocabulary (base, a model's, or the union) and each input's permutation
rows.py   per embedding-like tensor: which input row (or which fill) each output row takes,
          planned by `plan` and applied by `execute`
write.py  the output tokenizer files
"""
