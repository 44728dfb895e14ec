"""`adapter_config.json` of a PEFT LoRA adapter, read through one typed, bounded schema.

Only the keys kinmerge acts on are typed (peft writes dozens more, which are ignored); each
has a type and a range, and every problem of a file is reported at once, as for recipes:

    r                 whole number in [1, MAX_RANK]           (default 8, as peft)
    lora_alpha        finite number, |alpha| <= MAX_ALPHA     (default 8, as peft)
    rank_pattern      {regex: rank}, same rule as r
    alpha_pattern     {regex: alpha}, same rule as lora_alpha
    use_rslora, use_dora, fan_in_fan_out: true/false
    target_modules    a list of module names, or one regex, or null
    modules_to_save   a list of module names, or null

Pattern keys are regular expressions (peft matches them at the end of a module's name): one
that does not compile, or whose shape backtracks exponentially (`(a+)+`, `(\\w|\\w\\w)+`), is a
problem here, not a traceback or a hang later. Matching itself runs on the `regex` engine
with a time limit (MATCH_TIMEOUT_S a name): a pattern the shape check lets through and that
still takes too long to match a name is one clear error naming both, never a hang. An alpha
may be 0 or negative, as in peft (an adapter scaled to nothing, or subtracted); a rank may
not.

>>> cfg = read_adapter_config(Path("adapters/chat/adapter_config.json"))  # doctest: +SKIP
>>> q, up = "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj"
>>> cfg.rank(q), cfg.scale(up)                                            # doctest: +SKIP
(8, 2.0)
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import regex
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool,
                      StrictInt, StrictStr)

try:  # the regular-expression parser (renamed in Python 3.11)
    import re._parser as _parser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _parser  # type: ignore[no-redef]

from kinmerge.errors import ConfigError, ModelLoadError
from kinmerge.io.configfile import validate
from kinmerge.io.safe_path import regular_file, unreadable

MAX_CONFIG_BYTES = 2**20  # an adapter_config.json is a few kB
MAX_RANK = 65536  # LoRA ranks in use go to a few thousand
MAX_ALPHA = 1e6
MAX_PATTERNS = 10_000  # entries of rank_pattern / alpha_pattern
MAX_PATTERN_CHARS = 1000  # characters of one pattern or module name
MATCH_TIMEOUT_S = 1.0  # one pattern against one module name; real ones take microseconds
SUBJECT = "adapter_config.json"


def _regex(key: str) -> str:
    if len(key) > MAX_PATTERN_CHARS:
        raise ValueError(f"a pattern may have at most {MAX_PATTERN_CHARS} characters")
    try:
        re.compile(key)
        regex.compile(key)  # the engine it is matched on
        nested = _nested_repeat(_parser.parse(key).data)
    except (re.error, regex.error, RecursionError, OverflowError) as e:
        raise ValueError(f"not a valid regular expression ({e})") from None
    if nested == "branch":  # (\w|\w\w)+, (a.|.a)+: each round can match two ways
        raise ValueError("alternatives inside a repetition that can match the same text "
                         "(like `(\\w|\\w\\w)+`) can take exponential time to match; write "
                         "the module names plainly")
    if nested:  # (a+)+ and the like: matching can take exponential time (a hang)
        raise ValueError("a repetition inside a repetition (like `(a+)+`) can take "
                         "exponential time to match; write the module names plainly")
    return key


def _nested_repeat(items: list, inside: bool = False) -> bool | str:
    """Whether a parsed pattern repeats without bound something that can match the same text
    in more than one way: a variable-length repetition (`(a+)+`, `(a*)*`; True) or
    alternatives that do not start with distinct characters (`(\\w|\\w\\w)+`, `(a.|.a)+`;
    "branch"). Those shapes backtrack exponentially on a name that almost matches. Fixed
    counts (`(ab{2}){3}`) and alternatives told apart by their first character
    (`(q|k|v)_proj`, `(up|down)+`) are fine. (Python's parser has already folded common
    prefixes: `(\\w|\\w\\w)` reaches here as `\\w(|\\w)`.)"""
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = arg
            if inside and lo != hi:
                return True
            if found := _nested_repeat(list(sub), inside or hi is _parser.MAXREPEAT):
                return found
        elif name == "SUBPATTERN":
            if found := _nested_repeat(list(arg[-1]), inside):
                return found
        elif name == "BRANCH":
            if inside and not _distinct_starts(arg[1]):
                return "branch"
            for b in arg[1]:
                if found := _nested_repeat(list(b), inside):
                    return found
        elif name in ("ASSERT", "ASSERT_NOT"):
            if found := _nested_repeat(list(arg[1]), inside):
                return found
    return False


def _distinct_starts(branches: list) -> bool:
    """Whether every alternative starts with a literal character or a set of literal
    characters, and no two alternatives can start with the same character."""
    seen: set[int] = set()
    for b in branches:
        items = list(b)
        if not items:
            return False  # an empty alternative: the group is optional
        op, arg = items[0]
        if str(op) == "LITERAL":
            first = {arg}
        elif str(op) == "IN" and all(str(o) == "LITERAL" for o, _ in arg):
            first = {a for _, a in arg}
        else:
            return False
        if seen & first:
            return False
        seen |= first
    return True


def _number(v: Any) -> Any:
    """A finite JSON number as a float; anything else (a string, true, null, NaN) is refused
    as such."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"must be a number, not {type(v).__name__}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return float(v) if abs(v) <= 1e308 else math.copysign(math.inf, v)


def _none_is_empty(v: Any) -> Any:
    return {} if v is None else v


Rank = Annotated[StrictInt, Field(ge=1, le=MAX_RANK)]
Alpha = Annotated[float, BeforeValidator(_number),
                  Field(ge=-MAX_ALPHA, le=MAX_ALPHA)]
Pattern = Annotated[StrictStr, AfterValidator(_regex)]
Name = Annotated[StrictStr, Field(max_length=MAX_PATTERN_CHARS)]


class AdapterConfig(BaseModel):
    """The keys of adapter_config.json kinmerge reads (the others are peft's business)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    peft_type: StrictStr = "LORA"
    r: Rank = 8
    lora_alpha: Alpha = 8
    use_rslora: StrictBool = False
    use_dora: StrictBool = False
    fan_in_fan_out: StrictBool = False
    rank_pattern: Annotated[dict[Pattern, Rank], BeforeValidator(_none_is_empty),
                            Field(max_length=MAX_PATTERNS)] = {}
    alpha_pattern: Annotated[dict[Pattern, Alpha], BeforeValidator(_none_is_empty),
                             Field(max_length=MAX_PATTERNS)] = {}
    target_modules: Annotated[list[Name], Field(max_length=MAX_PATTERNS)] | Pattern | None = None
    modules_to_save: Annotated[list[Name], Field(max_length=MAX_PATTERNS)] | None = None

    def rank(self, module: str) -> int:
        """The rank declared for `module` (rank_pattern, else r)."""
        return _pattern(self.rank_pattern, module, self.r)

    def scale(self, module: str) -> float:
        """alpha / r (alpha / sqrt(r) with use_rslora), with the module's patterns applied."""
        r, alpha = self.rank(module), _pattern(self.alpha_pattern, module, self.lora_alpha)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    def untargeted(self, modules: list[str]) -> list[str]:
        """Entries of a target_modules list that name none of `modules` (peft: a module is
        targeted when its name is the entry or ends with `.entry`)."""
        if not isinstance(self.target_modules, list):
            return []  # null, or one regex ("all-linear" included): nothing to name
        return [t for t in dict.fromkeys(self.target_modules)
                if not any(m == t or m.endswith("." + t) for m in modules)]


def _pattern(patterns: dict, module: str, default):
    """peft's rule: the first pattern that matches the end of the module name (at a dot).
    Matched on the `regex` engine under MATCH_TIMEOUT_S: a pattern that takes longer is an
    error naming it, not a hang."""
    for key, value in patterns.items():
        try:
            hit = regex.match(rf"(.*\.)?({key})$", module, timeout=MATCH_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(
                [f"the pattern {key!r} took over {MATCH_TIMEOUT_S:g} s to match the module "
                 f"name {module!r}"], subject="adapter_config.json",
                where="rank_pattern / alpha_pattern",
                fix="write the module names plainly (e.g. `q_proj` or "
                    "`model\\.layers\\.0\\..*`)") from None
        if hit:
            return value
    return default


def read_adapter_config(f: Path) -> AdapterConfig:
    """adapter_config.json parsed and checked: a regular file of at most MAX_CONFIG_BYTES,
    UTF-8 JSON holding an object, every typed key in its range (ConfigError lists them all)."""
    size = regular_file(f, what=SUBJECT).st_size  # a FIFO would block the read
    if size > MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{SUBJECT} is {size} bytes, more than the {MAX_CONFIG_BYTES} an "
                             "adapter config may have", where=str(f),
                             fix="point at a PEFT adapter folder (its config is a few kB)")
    try:
        raw = f.read_bytes()
    except OSError as e:
        raise unreadable(f, e, what=SUBJECT) from e
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, deep nesting, huge ints
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:200]
        raise ModelLoadError(f"{SUBJECT} is not valid UTF-8 JSON: {why}", where=str(f),
                             fix="repair or re-download the adapter") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{SUBJECT} is not a JSON object", where=str(f),
                             fix="repair or re-download the adapter")
    return validate(AdapterConfig, cfg, subject=SUBJECT, where=str(f), error=ConfigError,
                    fix="correct the keys shown (peft writes r as a positive whole number, "
                        "lora_alpha as a number, patterns as {regex: value})")
