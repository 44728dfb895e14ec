"""Property: every adapter pattern `adapter_config.json` may hold is refused or matched against
any module name in bounded time. Patterns are drawn from a grammar of atoms, alternatives,
groups and quantifiers nested two deep; each is either refused (its shape backtracks
exponentially) or, accepted, matched as peft matches it against near-miss names, where the
matching engine's own time limit (MATCH_TIMEOUT_S, lowered here) ends a slow match with a
clear error. A slow C-level match cannot be interrupted by the fuzzers' alarm, which is why
the limit must come from the engine: this test hung on `re` before matching moved to
`regex` with a timeout."""
from __future__ import annotations

import time

from fuzz_kit import fuzz, time_limit
from hypothesis import given
from hypothesis import strategies as st

from kinmerge.errors import ConfigError
from kinmerge.io import adapter_config
from kinmerge.io.adapter_config import _pattern, _regex

ATOMS = ["a", "b", ".", r"\w", "[ab]", "ab", r"\."]
QUANTIFIERS = ["", "", "*", "+", "?", "{2}", "{1,3}"]
NAMES = ["a" * 25 + "!", "ab" * 12 + "!", "a." * 12 + "!", "b" * 25, "ab" * 13]


def patterns(depth: int = 2):
    atom = st.sampled_from(ATOMS)
    if depth == 0:
        return atom
    inner = patterns(depth - 1)
    seq = st.lists(inner, min_size=1, max_size=2).map("".join)
    group = st.lists(seq, min_size=1, max_size=3).map(lambda alts: f"({'|'.join(alts)})")
    quantified = st.tuples(st.one_of(atom, group), st.sampled_from(QUANTIFIERS)).map("".join)
    return st.lists(quantified, min_size=1, max_size=3).map("".join)


@fuzz(default=150, slow=3000)
@given(pattern=patterns())
@time_limit()
def test_every_accepted_pattern_matches_in_bounded_time(pattern):
    try:
        _regex(pattern)
    except ValueError as e:
        assert "exponential time" in str(e) or "not a valid regular expression" in str(e)
        return
    limit = adapter_config.MATCH_TIMEOUT_S
    adapter_config.MATCH_TIMEOUT_S = 0.05
    try:
        for name in NAMES:
            t0 = time.perf_counter()
            try:
                _pattern({pattern: 1}, f"model.layers.0.{name}", 0)
            except ConfigError as e:
                assert "took over 0.05 s to match the module name" in str(e)
            took = time.perf_counter() - t0
            assert took < 0.5, f"accepted {pattern!r} took {took:.2f} s on {name!r}"
    finally:
        adapter_config.MATCH_TIMEOUT_S = limit
