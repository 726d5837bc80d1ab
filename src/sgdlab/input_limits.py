"""Bounded input: a config file or dict is checked for size, depth, self-reference and
duplicate keys before anything validates (let alone runs) it.

A YAML file is small text, but YAML aliases can make a 350-byte file expand to hundreds of
millions of values (an "alias bomb"), an anchor can contain an alias to itself (an infinite
structure), and nesting thousands of levels deep exhausts the parser's recursion. Each case
is refused with one :class:`~sgdlab.errors.ConfigError` line:

* the file: at most :data:`MAX_CONFIG_BYTES` bytes are read (``/dev/zero`` included);
* the YAML: at most :data:`MAX_DEPTH` levels of nesting and :data:`MAX_VALUES` values once
  every alias is expanded (counted on the parsed node graph, without expanding it); an
  anchor that contains an alias to itself is refused; a key given twice in one mapping is
  an error (YAML would silently keep the last one);
* a dict given to :func:`sgdlab.config.load_config` goes through the same depth, size and
  self-reference checks (:func:`check_structure`).

Booleans follow YAML 1.2 (only ``true``/``false``), so that the ``streams.off`` key stays a
string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sgdlab.errors import ConfigError
from sgdlab.validation import shorten

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "check_structure",
    "load_yaml",
    "read_config_text",
]

#: the largest config file read (a config is a few lines; per-chain lists fit easily)
MAX_CONFIG_BYTES = 1 << 20
#: the deepest nesting of mappings and lists (a config uses four levels)
MAX_DEPTH = 32
#: the most values (scalars, lists and mappings) in a config once YAML aliases are expanded
MAX_VALUES = 1 << 20


def read_config_text(path: Path) -> str:
    """The text of a config file, reading at most :data:`MAX_CONFIG_BYTES` + 1 bytes."""
    if not path.exists():
        raise ConfigError("config", f"file {shorten(str(path))} does not exist")
    if path.is_dir():
        raise ConfigError("config", f"{shorten(str(path))} is a folder; give a YAML file")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            "config", f"cannot read {shorten(str(path))}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            "config", f"{shorten(str(path))} is larger than {MAX_CONFIG_BYTES >> 20} MiB; a run "
            "config is a few lines of YAML",
        )  # fmt: skip
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            "config", f"{shorten(str(path))!s} is not a UTF-8 text (YAML) file"
        ) from None


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


class _ConfigLoader(yaml.SafeLoader):
    """A SafeLoader with YAML 1.2 booleans (YAML 1.1 also reads on/off/yes/no as booleans,
    which would turn the ``streams.off`` key into ``False``) whose composer stops at
    :data:`MAX_DEPTH` levels (the composer recurses once per level)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_ConfigLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _where(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


#: (child, the key it is under — ``None`` for list items and mapping keys) of a container,
#: ``None`` for a scalar
Children = Callable[[Any], list[tuple[Any, str | None]] | None]


def _check_bounds(
    root: Any, children: Children, source: str, self_ref: str, where: Callable[[Any], str],
    visit_hook: Callable[[Any, tuple], None],
) -> None:  # fmt: skip
    """Depth, expanded size and self-reference of a tree whose subtrees may be shared (a
    YAML node graph with aliases, a dict holding the same list twice).

    Sizes are memoized per container, so a container reached through many references is
    measured once while all its appearances are counted: the check is linear in the input,
    not in its expansion. ``visit_hook(container, path)`` runs once per container."""
    memo: dict[int, tuple[int, int]] = {}  # id(container) -> (values, height)
    on_path: set[int] = set()

    def visit(node: Any, depth: int, path: tuple[str, ...]) -> tuple[int, int]:
        kids = children(node)
        if kids is None:
            return 1, 0
        key, field = id(node), ".".join(path) or "config"
        if key in on_path:
            raise ConfigError(field, f"{source}: {self_ref}{where(node)}")
        if key in memo:
            size, height = memo[key]
        else:
            if depth > MAX_DEPTH:  # before descending: references can chain deeper than text
                raise ConfigError(field, f"{source} nests values more than {MAX_DEPTH} levels deep")
            on_path.add(key)
            visit_hook(node, path)
            size, height = 1, 0
            for child, part in kids:
                s, h = visit(child, depth + 1, path if part is None else (*path, part))
                size, height = size + s, max(height, h + 1)
                if size > MAX_VALUES:
                    break
            on_path.discard(key)
            memo[key] = (size, height)
        if size > MAX_VALUES:
            raise ConfigError(
                field, f"{source} expands to more than {MAX_VALUES} values (YAML aliases?); a "
                "run config is a few lines",
            )  # fmt: skip
        if depth + height > MAX_DEPTH:
            raise ConfigError(
                field, f"{source} nests values more than {MAX_DEPTH} levels deep{where(node)}"
            )
        return size, height

    visit(root, 0, ())


def _label(key: object) -> str:
    return shorten(key, 40).strip("'\"")


def _node_children(node: yaml.Node) -> list[tuple[Any, str | None]] | None:
    if isinstance(node, yaml.SequenceNode):
        return [(c, None) for c in node.value]
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[Any, str | None]] = []
        for k, v in node.value:
            out += [(k, None), (v, _label(k.value if isinstance(k, yaml.ScalarNode) else "?"))]
        return out
    return None


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Depth, expanded size, self-reference and duplicate keys of a composed YAML document."""

    def duplicates(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            _no_duplicate_keys(node, path, source)

    _check_bounds(
        root, _node_children, source,
        "an alias refers to a value that contains it (a self-referencing anchor); write the "
        "value out", lambda node: _where(node.start_mark), duplicates,
    )  # fmt: skip


def _no_duplicate_keys(node: yaml.MappingNode, path: tuple[str, ...], source: str) -> None:
    seen: set[tuple[str, str]] = set()
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (k.tag, k.value)
        if ident in seen:
            field = ".".join((*path, _label(k.value)))
            raise ConfigError(
                field,
                f"{source}: key {shorten(k.value)} is given twice{_where(k.start_mark)}; keep one",
            )
        seen.add(ident)


def load_yaml(text: str, source: str = "config") -> Any:
    """Parse config YAML (YAML 1.2 booleans) within the limits of this module; a syntax error
    or a limit is a one-line :class:`ConfigError`."""
    source = shorten(source, 80).strip("'\"")
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError("config", f"{source} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        return loader.construct_document(node)
    except _TooDeep as deep:
        raise ConfigError(
            "config", f"{source} nests values more than {MAX_DEPTH} levels deep{_where(deep.mark)}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
        raise ConfigError(
            "config", f"{source} is not valid YAML: {shorten(problem, 120).strip(chr(39))}"
            f"{_where(mark)}",
        ) from None  # fmt: skip
    finally:
        loader.dispose()


def check_structure(data: Any, source: str = "config") -> None:
    """Refuse a config (dict) nested deeper than :data:`MAX_DEPTH`, holding more than
    :data:`MAX_VALUES` values (shared sub-objects counted each time they appear), or
    containing itself."""

    def children(value: Any) -> list[tuple[Any, str | None]] | None:
        if isinstance(value, dict):
            return [(v, _label(k)) for k, v in value.items()]
        if isinstance(value, list | tuple | set | frozenset):
            return [(v, None) for v in value]
        return None

    _check_bounds(data, children, source, "contains itself (a self-referencing value)",
                  lambda value: "", lambda value, path: None)  # fmt: skip
