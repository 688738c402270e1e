"""A safe, unambiguous YAML reader for config files.

PyYAML implements YAML 1.1, whose implicit typing surprises: ``010000`` is octal (4,096),
``1:30`` is sexagesimal (90), ``1e5`` is a *string*, and a key given twice silently keeps the
last value. :func:`read_yaml` reads a config file so that every one of these is either read as
YAML 1.2 reads it or rejected with one line naming the file, line and column:

* the file must be UTF-8 (a UTF-8 byte-order mark is allowed) and at most :data:`MAX_BYTES`;
* a key repeated in one mapping is an error;
* integers with a leading zero (``010000``, YAML 1.1 octal) and sexagesimal numbers (``1:30``)
  are rejected as ambiguous: write ``10000`` (or quote the value to mean text);
* ``1e5`` and ``2.5E-3`` are numbers (YAML 1.2), not strings;
* nesting deeper than :data:`MAX_DEPTH` levels, and anchors/aliases that expand to more than
  :data:`MAX_NODES` values, are rejected before they can exhaust the stack or memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from cbcv.core.errors import ConfigError

#: Largest config file read (a company config is a few kilobytes).
MAX_BYTES = 1 << 20
#: Deepest nesting of mappings and lists (a config needs 4).
MAX_DEPTH = 32
#: Most values in the document once aliases are expanded.
MAX_NODES = 100_000

_AMBIGUOUS_INT = re.compile(r"[-+]?0[0-9_]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+")
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)[eE][-+]?[0-9]+")


class _Problem(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _TooLarge(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader with a depth limit, duplicate-key and ambiguous-number checks."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Problem(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2020-13-45
            tag = {"timestamp": "date"}.get(node.tag.rsplit(":", 1)[-1], node.tag.rsplit(":", 1)[-1])
            raise _Problem(f"{node.value!r} is not a valid {tag} ({exc})", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise _Problem(f"key {key!r} is given twice in one mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        if _AMBIGUOUS_INT.fullmatch(node.value):
            why = "a colon as base 60" if ":" in node.value else "a leading zero as octal"
            raise _Problem(
                f"{node.value} is ambiguous (YAML 1.1 reads {why}): write {_plain(node.value)}, "
                "or quote it to mean text",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


def _plain(value: str) -> str:
    if ":" in value:
        return "the number in decimal"
    sign = value[0] if value[0] in "+-" else ""
    digits = value.lstrip("+-").replace("_", "").lstrip("0") or "0"
    return sign + digits


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+.0123456789"))


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}: line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8 "
            "(save the config as UTF-8)"
        ) from None


def _count(value: Any, budget: list[int], depth: int) -> None:
    """Count values (aliases expanded) until the budget or the depth limit is exceeded."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise _TooLarge
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        _count(child, budget, depth + 1)


def _yaml_error(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None)
    if mark is None and isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return f"not valid YAML at line {line}: {exc.reason} (character {exc.character:#x})"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"not valid YAML{where}" + (f": {problem}" if problem else "")


def parse_yaml(text: str, path: str | Path = "<config>") -> Any:
    """Parse YAML text with the rules of the module docstring; errors name ``path``."""
    loader = None
    try:
        loader = _Loader(text)
        value = loader.get_single_data()
    except _Problem as exc:
        raise ConfigError(f"{path}: line {exc.mark.line + 1}, column {exc.mark.column + 1}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_error(exc, text)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    try:
        _count(value, [MAX_NODES], 0)
    except (_TooLarge, RecursionError):
        raise ConfigError(
            f"{path}: anchors and aliases expand to more than {MAX_NODES:,} values or {MAX_DEPTH} levels"
        ) from None
    return value


def read_yaml(path: str | Path) -> tuple[Path, Any]:
    """Read and parse a YAML config file (UTF-8, at most :data:`MAX_BYTES`)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{p}: the config file is {size:,} bytes; at most {MAX_BYTES:,} are read")
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc.strerror})") from None
    return p, parse_yaml(_decode(data, p), p)
