"""YAML text -> Python values, with limits: what recipes, evolve.yml and breed.yml are read with.

A recipe comes from strangers. PyYAML's `safe_load` is safe from code execution but not from
size: a few hundred bytes of nested anchors (a "billion laughs") expand to a billion nodes the
moment anything walks the value, deep nesting ends in a RecursionError, and its pure-Python
parser takes 14 s for a 2.8 MB recipe. Here libyaml's C parser (pure Python where PyYAML was
built without it) emits events, and this module builds the values from them in one flat loop
(no recursion), counting as it goes:

- MAX_BYTES: a file larger than this is refused before it is parsed;
- MAX_DEPTH: collections nested deeper than this are refused;
- MAX_NODES: every node counts, and an alias counts as the whole subtree it stands for;
- MAX_ALIAS_NODES: all aliases together may stand for at most this many nodes, so an anchor
  reused a few times (a gradient, a filter list) works and a billion laughs stops at once.

An alias yields the same Python object as its anchor (as PyYAML does); the limits bound what
a walk over the result can cost. A mapping with the same key twice is refused when the two
values differ (YAML forbids duplicate keys; PyYAML and mergekit silently keep the last), and
accepted with a warning when they are equal. Explicit tags on collections (`!!set`,
`!!python/...`) and an alias inside its own anchor are refused.
"""
from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Any

import yaml

log = logging.getLogger(__name__)

MAX_BYTES = 8 * 2**20
MAX_DEPTH = 64
MAX_NODES = 2_000_000
MAX_ALIAS_NODES = 100_000
C_LOADER = getattr(yaml, "CSafeLoader", None)
_Loader = C_LOADER or yaml.SafeLoader
_MAP_TAGS = (None, "!", "tag:yaml.org,2002:map")
_SEQ_TAGS = (None, "!", "tag:yaml.org,2002:seq")
_MERGE = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """The text is not valid YAML or exceeds a limit; the message says which and where."""


@dataclass
class _Frame:
    """A collection being built: its items so far and the nodes it holds."""

    value: Any  # a list, or a list of (key, value, line) pairs for a mapping
    is_map: bool
    anchor: str | None
    line: int
    nodes: int = 1


class _Builder:
    def __init__(self):
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, nodes)
        self.nodes = 0
        self.alias_nodes = 0
        self.stack: list[_Frame] = []
        self.docs: list[Any] = []
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.scalars: dict[tuple, Any] = {}
        self.warnings: list[str] = []

    def count(self, n: int, line: int) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise YamlError(f"more than {MAX_NODES:,} YAML nodes (aliases counted as what "
                            f"they stand for), at line {line}; a recipe is far smaller")

    def add(self, value: Any, nodes: int, anchor: str | None, line: int,
            tag: str | None = None) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, nodes)
        if not self.stack:
            self.docs.append(value)
            return
        top = self.stack[-1]
        top.nodes += nodes
        if top.is_map:
            top.value.append((value, tag, line))
        else:
            top.value.append(value)

    def scalar(self, ev) -> tuple[Any, str]:
        key = (ev.tag, ev.value, ev.implicit)
        if key in self.scalars:  # recipes repeat their values: resolve each once
            return self.scalars[key]
        tag = ev.tag
        if tag in (None, "!"):
            tag = (self.resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
                   if tag is None else "tag:yaml.org,2002:str")
        if tag == _MERGE:
            return "<<", tag
        make = self.constructor.yaml_constructors.get(tag)
        if make is None:
            raise YamlError(f"unsupported YAML tag {_short(tag)} at line "
                            f"{ev.start_mark.line + 1}")
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
        try:
            value = make(self.constructor, node)
        except (yaml.YAMLError, ValueError, TypeError) as e:
            raise YamlError(f"bad {tag.rsplit(':', 1)[-1]} value at line "
                            f"{ev.start_mark.line + 1}: {_short(ev.value)}") from e
        self.scalars[key] = value, tag
        return value, tag

    def open(self, ev, is_map: bool) -> None:
        line = ev.start_mark.line + 1
        if ev.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            raise YamlError(f"unsupported YAML tag {_short(ev.tag)} at line {line}")
        if len(self.stack) >= MAX_DEPTH:
            raise YamlError(f"YAML nested more than {MAX_DEPTH} levels deep at line {line}")
        self.count(1, line)
        self.stack.append(_Frame([], is_map, ev.anchor, line))

    def on_scalar(self, ev) -> None:
        line = ev.start_mark.line + 1
        self.count(1, line)
        value, tag = self.scalar(ev)
        self.add(value, 1, ev.anchor, line, tag)

    def new_document(self, ev) -> None:
        self.anchors.clear()  # anchors do not carry over between documents

    def close(self, ev=None) -> None:
        f = self.stack.pop()
        value = _mapping(f, self.warnings) if f.is_map else f.value
        self.add(value, f.nodes, f.anchor, f.line)

    def alias(self, ev) -> None:
        line = ev.start_mark.line + 1
        if ev.anchor not in self.anchors:
            inside = any(f.anchor == ev.anchor for f in self.stack)
            raise YamlError(f"alias *{_short(ev.anchor)} at line {line} "
                            + ("refers to the node it is inside" if inside
                               else "has no anchor before it"))
        value, nodes = self.anchors[ev.anchor]
        self.alias_nodes += nodes
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise YamlError(f"aliases stand for more than {MAX_ALIAS_NODES:,} YAML nodes "
                            f"(at *{_short(ev.anchor)}, line {line}): nested anchors that "
                            "expand exponentially (a 'billion laughs') are refused")
        self.count(nodes, line)
        self.add(value, nodes, None, line)


def _mapping(f: _Frame, warnings: list[str]) -> dict:
    """The dict of a mapping frame: merge keys applied, duplicate keys checked."""
    items, out, lines = f.value, {}, {}
    merged: dict = {}
    for i in range(0, len(items), 2):
        key, tag, line = items[i]
        value = items[i + 1][0]
        if tag == _MERGE:
            for src in reversed(value if isinstance(value, list) else [value]):
                if not isinstance(src, dict):
                    raise YamlError(f"a merge key `<<` takes a mapping, at line {line}")
                merged.update(src)
            continue
        try:
            hash(key)
        except TypeError:
            raise YamlError(f"a mapping key must be a plain value, not a collection, "
                            f"at line {line}") from None
        if key in out:
            if out[key] != value:
                raise YamlError(f"duplicate key {_short(key)} at lines {lines[key]} and "
                                f"{line} with different values (YAML forbids duplicate keys; "
                                "mergekit silently keeps the last): delete one")
            warnings.append(f"duplicate key {_short(key)} at lines {lines[key]} and {line} "
                            "(same value; the second is ignored)")
        out[key], lines[key] = value, line
    if merged:  # explicit keys win over merged ones, which keep their own order
        out = {**{k: v for k, v in merged.items() if k not in out}, **out}
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


def load_all(text: str) -> list[Any]:
    """Every YAML document of `text`, built within the limits; raises YamlError."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"the text is {len(text):,} characters; the limit is {MAX_BYTES:,}")
    b = _Builder()
    loader = _Loader(text)
    handlers = {yaml.ScalarEvent: b.on_scalar, yaml.AliasEvent: b.alias,
                yaml.MappingStartEvent: lambda ev: b.open(ev, True),
                yaml.SequenceStartEvent: lambda ev: b.open(ev, False),
                yaml.MappingEndEvent: b.close, yaml.SequenceEndEvent: b.close,
                yaml.DocumentStartEvent: b.new_document}
    collecting = gc.isenabled()
    gc.disable()  # the loop makes many containers: GC passes over them cost more than it
    try:
        while (ev := loader.get_event()) is not None:
            handle = handlers.get(type(ev))
            if handle is not None:
                handle(ev)
    except yaml.YAMLError as e:
        raise YamlError(str(e)) from None
    finally:
        loader.dispose()
        if collecting:
            gc.enable()
    for w in b.warnings:
        log.warning(w)
    return b.docs


class MultipleDocumentsError(YamlError):
    """The text holds several YAML documents where one was expected."""

    def __init__(self, count: int):
        super().__init__(f"expected one YAML document, found {count} (separated by `---`)")
        self.count = count


def load(text: str) -> Any:
    """The single YAML document of `text` (None for an empty text); raises YamlError."""
    docs = load_all(text)
    if len(docs) > 1:
        raise MultipleDocumentsError(len(docs))
    return docs[0] if docs else None
