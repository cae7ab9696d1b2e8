"""YAML in: a safe loader that keeps the line and column of every key path.

Parameter files hold plain data only (no tags beyond the core schema). ``1e6`` and ``1.0e6`` are
read as floats (YAML 1.2), where PyYAML's YAML 1.1 resolver would read strings. Errors are
:class:`~mcsmp.errors.ParamError` with the file, line and column.

The loader is bounded (docs/parameters.md, "Limits"): at most :data:`MAX_ITEMS` entries in one
list or mapping, :data:`MAX_DEPTH` levels of nesting, :data:`MAX_NODES` values with every alias
expanded (an alias may not refer to its own anchor), 64-bit integers, and no control characters.
Events come from libyaml when PyYAML has it (ten times faster), composed here so the limits hold
while reading, not after.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from ..errors import ParamError

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_NODES", "Located", "parse_yaml"]

MAX_ITEMS = 8192  # entries of one list or mapping: a per-CPU list at the largest machine.cpus
MAX_DEPTH = 32  # nested lists and mappings (the deepest default is 5)
MAX_NODES = 1 << 20  # values in a document, every alias expanded
MAX_INT = 2**63 - 1  # integers are 64-bit (|n| <= MAX_INT)
# What YAML calls non-printable (PyYAML's reader refuses these), tab, LF and CR excepted.
_CONTROL = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Located:
    """Line/column of every key path of one YAML document."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.marks: dict[str, tuple[int, int]] = {}
        self.includes: list[Located] = []  # the documents this one includes (their keys, their lines)

    def at(self, path: str) -> tuple[int, int] | None:
        hit = self._closest(path)
        return None if hit is None else hit[1]

    def _closest(self, path: str) -> tuple[int, tuple[int, int]] | None:
        # The closest located ancestor of the path (e.g. a list item falls back to its list).
        p = path
        while p:
            if p in self.marks:
                return len(p), self.marks[p]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return None

    def find(self, path: str) -> tuple[str, int, int] | None:
        """``(source, line, column)`` of the most precise mark of ``path`` in this document or the
        documents it includes (this document wins a tie: its values replace the included ones)."""
        best: tuple[int, str, tuple[int, int]] | None = None
        stack: list[Located] = [self]
        while stack:
            loc = stack.pop(0)
            hit = loc._closest(path)
            if hit is not None and (best is None or hit[0] > best[0]):
                best = (hit[0], loc.source, hit[1])
            stack += loc.includes
        return None if best is None else (best[1], *best[2])


class _Resolver(yaml.resolver.Resolver):
    """The core resolver that also reads ``1e6`` and ``1.0e6`` as floats (YAML 1.2), not strings."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

_ALLOWED_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
}
_INT_TAG = "tag:yaml.org,2002:int"
_Parser = getattr(yaml, "CBaseLoader", yaml.SafeLoader)  # its events: libyaml's when PyYAML has it


def _where(mark: Any) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (None, None)


class _Composer:
    """Events to nodes, refusing what passes the limits as soon as it is read."""

    def __init__(self, text: str, source: str) -> None:
        self.events: Any = _Parser(text)
        self.source = source
        self.resolver = _Resolver()
        self.anchors: dict[str, Any] = {}

    def fail(self, message: str, mark: Any) -> None:
        line, col = _where(mark)
        raise ParamError(message, source=self.source, line=line, column=col)

    def document(self) -> Any:
        self.events.get_event()  # stream start
        if self.events.check_event(StreamEndEvent):
            return None
        self.events.get_event()  # document start
        node = self.node(1)
        self.events.get_event()  # document end
        if self.events.check_event(DocumentStartEvent):
            self.fail("a parameter file holds one YAML document", self.events.peek_event().start_mark)
        return node

    def node(self, depth: int) -> Any:
        ev = self.events.get_event()
        if isinstance(ev, AliasEvent):
            if ev.anchor not in self.anchors:
                self.fail(f"undefined alias {ev.anchor!r}", ev.start_mark)
            if self.anchors[ev.anchor] is None:
                self.fail(f"the alias *{ev.anchor} refers to its own anchor (a recursive value)", ev.start_mark)
            return self.anchors[ev.anchor]
        if depth > MAX_DEPTH:
            self.fail(f"nested deeper than the limit of {MAX_DEPTH} levels", ev.start_mark)
        anchor = getattr(ev, "anchor", None)
        if anchor is not None:
            self.anchors[anchor] = None  # in progress: an alias to it inside is recursive
        node: Any
        if isinstance(ev, ScalarEvent):
            tag = ev.tag if ev.tag not in (None, "!") else self.resolver.resolve(ScalarNode, ev.value, ev.implicit)
            node = ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
        elif isinstance(ev, SequenceStartEvent):
            tag = ev.tag if ev.tag not in (None, "!") else self.resolver.resolve(SequenceNode, None, ev.implicit)
            node = SequenceNode(tag, [], ev.start_mark, None, flow_style=ev.flow_style)
            while not self.events.check_event(SequenceEndEvent):
                self._count(node, ev)
                node.value.append(self.node(depth + 1))
            node.end_mark = self.events.get_event().end_mark
        elif isinstance(ev, MappingStartEvent):
            tag = ev.tag if ev.tag not in (None, "!") else self.resolver.resolve(MappingNode, None, ev.implicit)
            node = MappingNode(tag, [], ev.start_mark, None, flow_style=ev.flow_style)
            while not self.events.check_event(MappingEndEvent):
                self._count(node, ev)
                key = self.node(depth + 1)
                node.value.append((key, self.node(depth + 1)))
            node.end_mark = self.events.get_event().end_mark
        else:  # pragma: no cover - the parser emits nothing else here
            self.fail(f"unexpected YAML event {type(ev).__name__}", ev.start_mark)
        if anchor is not None:
            self.anchors[anchor] = node
        return node

    def _count(self, node: Any, ev: Any) -> None:
        if len(node.value) >= MAX_ITEMS:
            kind = "list" if isinstance(node, SequenceNode) else "mapping"
            self.fail(f"a {kind} longer than the limit of {MAX_ITEMS:,} entries", ev.start_mark)


def _size(node: Any, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(values, depth) of ``node`` with every alias expanded; shared nodes are measured once."""
    got = memo.get(id(node))
    if got is None:
        kids = node.value if isinstance(node, SequenceNode) else (
            [n for kv in node.value for n in kv] if isinstance(node, MappingNode) else [])
        sizes = [_size(k, memo) for k in kids]
        got = (1 + sum(s for s, _ in sizes), 1 + max((d for _, d in sizes), default=0))
        memo[id(node)] = got
    return got


def _construct(node: yaml.Node, path: str, loc: Located, constructor: yaml.constructor.SafeConstructor) -> Any:
    mark = node.start_mark
    line, col = mark.line + 1, mark.column + 1
    loc.marks.setdefault(path, (line, col))
    if node.tag not in _ALLOWED_TAGS:
        raise ParamError(
            f"YAML tag {node.tag!r} is not allowed (parameter files hold plain data)",
            path=path, source=loc.source, line=line, column=col,
        )  # fmt: skip
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = _construct(knode, path + ".<key>", loc, constructor)
            kline, kcol = knode.start_mark.line + 1, knode.start_mark.column + 1
            if isinstance(key, (dict, list)):
                raise ParamError("a mapping key must be a scalar", path=path, source=loc.source, line=kline, column=kcol)
            sub = f"{path}.{key}" if path else str(key)
            loc.marks[sub] = (kline, kcol)
            if key in out:
                raise ParamError("duplicate key", path=sub, source=loc.source, line=kline, column=kcol)
            out[key] = _construct(vnode, sub, loc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, f"{path}[{i}]", loc, constructor) for i, v in enumerate(node.value)]
    kind = node.tag.rsplit(":", 1)[-1]
    if node.tag == _INT_TAG and len(node.value) > 32:  # before int() parses thousands of digits
        raise ParamError(f"integer too large (the limit is 64 bits, |n| <= {MAX_INT})",
                         path=path, source=loc.source, line=line, column=col)  # fmt: skip
    try:
        value = constructor.construct_object(node, deep=True)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, yaml.constructor.ConstructorError):
        raise ParamError(f"cannot read {node.value[:40]!r} as !!{kind}", path=path, source=loc.source,
                         line=line, column=col) from None  # fmt: skip
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ParamError(f"integer too large (the limit is 64 bits, |n| <= {MAX_INT})",
                         path=path, source=loc.source, line=line, column=col)  # fmt: skip
    return value


def parse_yaml(text: str, source: str) -> tuple[Any, Located]:
    loc = Located(source)
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise ParamError(f"control character U+{ord(bad.group()):04X} is not allowed", source=source,
                         line=line, column=col)  # fmt: skip
    try:
        node = _Composer(text, source).document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _where(mark)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ParamError(f"YAML syntax error: {problem}", source=source, line=line, column=col) from None
    except yaml.YAMLError as exc:
        raise ParamError("YAML error: " + " ".join(str(exc).split()), source=source) from None
    if node is None:
        return {}, loc
    values, depth = _size(node, {})
    if values > MAX_NODES or depth > MAX_DEPTH:
        what = f"{values:,} values, over the limit of {MAX_NODES:,}" if values > MAX_NODES else (
            f"nesting {depth} levels deep, over the limit of {MAX_DEPTH}")
        raise ParamError(f"with its aliases expanded the document holds {what}", source=source, line=1, column=1)
    return _construct(node, "", loc, yaml.constructor.SafeConstructor()), loc
