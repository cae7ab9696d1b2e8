"""YAML in: a safe loader that keeps the line and column of every key path.

Parameter files hold plain data only (no tags beyond the core schema). ``1e6`` and ``1.0e6`` are
read as floats (YAML 1.2), where PyYAML's YAML 1.1 resolver would read strings. Errors are
:class:`~mcsmp.errors.ParamError` with the file, line and column.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import ParamError

__all__ = ["Located", "parse_yaml"]


class Located:
    """Line/column of every key path of one YAML document."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.marks: dict[str, tuple[int, int]] = {}

    def at(self, path: str) -> tuple[int, int] | None:
        # The closest located ancestor of the path (e.g. a list item falls back to its list).
        p = path
        while p:
            if p in self.marks:
                return self.marks[p]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return None


class _Loader(yaml.SafeLoader):
    """Safe loader that also reads ``1e6`` and ``1.0e6`` as floats (YAML 1.2), not strings."""


_Loader.add_implicit_resolver(
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


def _construct(node: yaml.Node, path: str, loc: Located, constructor: yaml.constructor.SafeConstructor) -> Any:
    mark = node.start_mark
    loc.marks.setdefault(path, (mark.line + 1, mark.column + 1))
    if node.tag not in _ALLOWED_TAGS:
        raise ParamError(
            f"YAML tag {node.tag!r} is not allowed (parameter files hold plain data)",
            path=path, source=loc.source, line=mark.line + 1, column=mark.column + 1,
        )  # fmt: skip
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = _construct(knode, path + ".<key>", loc, constructor)
            if isinstance(key, (dict, list)):
                raise ParamError("a mapping key must be a scalar", path=path, source=loc.source,
                                 line=knode.start_mark.line + 1, column=knode.start_mark.column + 1)
            sub = f"{path}.{key}" if path else str(key)
            loc.marks[sub] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            if key in out:
                raise ParamError("duplicate key", path=sub, source=loc.source,
                                 line=knode.start_mark.line + 1, column=knode.start_mark.column + 1)
            out[key] = _construct(vnode, sub, loc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, f"{path}[{i}]", loc, constructor) for i, v in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> tuple[Any, Located]:
    loc = Located(source)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ParamError(f"YAML syntax error: {problem}", source=source, line=line, column=col) from None
    except yaml.YAMLError as exc:
        raise ParamError(f"YAML error: {exc}", source=source) from None
    if node is None:
        return {}, loc
    try:
        value = _construct(node, "", loc, yaml.constructor.SafeConstructor())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ParamError(f"YAML: {exc.problem}", source=source,
                         line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None
    return value, loc
