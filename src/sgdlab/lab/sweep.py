"""Sweeps: one base config, a grid of overrides, one run per grid point.

``sgdlab sweep base.yaml --grid optimizer.lr=0.01,0.1 --grid batch.size=8,64`` runs the
Cartesian product of the values (here 4 runs). A grid spec is ``KEY=V1,V2,…``: ``KEY`` a
dotted config path (``optimizer.lr``, ``batch.size``, ``seed``, ``problem.l2``), each value
read as a YAML scalar (``0.01`` a number, ``true`` a boolean, ``sgd`` a string).

Everything is checked before anything runs or is stored (:func:`grid_points`): a spec
without ``=``, a key given twice, an empty list of values, a repeated value, and every
grid point's config (so an unknown key, a wrong type or a value out of range is found)
— each as one :class:`~sgdlab.errors.ConfigError` naming ``--grid KEY``.

A grid point's name is ``key=value,key=value`` (in the order of the ``--grid`` options);
its run is stored as ``<sweep name>/<point>`` (kind ``sweep``) and reused by config hash
like every lab run (:mod:`sgdlab.lab.dispatch`).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sgdlab.config import load_config, load_yaml
from sgdlab.errors import ConfigError

#: sections a config may give as a bare name (``optimizer: sgd``)
_NAMED = ("problem", "optimizer", "schedule")


def parse_value(key: str, text: str) -> Any:
    """A grid value: a YAML scalar (``0.01`` → 0.01, ``true`` → True, ``sgd`` → "sgd")."""
    try:
        value = load_yaml(text, f"value {text!r}")
    except ConfigError as exc:
        raise ConfigError(f"--grid {key}", exc.message) from None
    if isinstance(value, list | dict):
        raise ConfigError(f"--grid {key}", f"value {text!r}: give plain values (numbers, "
                          "names, true/false), separated by commas")  # fmt: skip
    return text if value is None else value


def parse_grid(specs: list[str]) -> list[tuple[str, list[Any]]]:
    """``["optimizer.lr=0.01,0.1", …]`` → ``[("optimizer.lr", [0.01, 0.1]), …]``."""
    axes: list[tuple[str, list[Any]]] = []
    for spec in specs:
        key, eq, raw = spec.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError("--grid", f"{spec!r} is not KEY=V1,V2,… (e.g. optimizer.lr=0.01,0.1)")
        if any(not part for part in key.split(".")):
            raise ConfigError(f"--grid {key}", "is not a dotted config key (e.g. optimizer.lr)")
        if any(k == key for k, _ in axes):
            raise ConfigError(f"--grid {key}", "given twice; list all its values in one --grid")
        items = [v.strip() for v in raw.split(",")]
        if not any(items):
            raise ConfigError(f"--grid {key}", "empty list of values: give KEY=V1,V2,…")
        if not all(items):
            raise ConfigError(f"--grid {key}", f"empty value in {raw!r}: remove the extra comma")
        values = [parse_value(key, v) for v in items]
        repeated = next((a for i, a in enumerate(items) if a in items[:i]), None)
        if repeated is not None:
            raise ConfigError(f"--grid {key}", f"value {repeated} is listed twice")
        axes.append((key, values))
    return axes


def set_key(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with the dotted ``key`` set to ``value`` (sections created as
    needed; a section given as a bare name becomes ``{name: …}``)."""
    out = copy.deepcopy(config)
    node = out
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str) and depth == 0 and part in _NAMED:
            child = node[part] = {"name": child}
        elif not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"--grid {key}", f"{where} is a value, not a section; "
                              f"set {where} itself")  # fmt: skip
        node = child
    node[parts[-1]] = value
    return out


def _point_name(point: tuple[tuple[str, Any], ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in point)


def _owner(field: str, keys: list[str]) -> str | None:
    """The grid key an error's field belongs to (the field itself, or a section above it)."""
    match = [k for k in keys
             if field == k or field.startswith(k + ".") or k.startswith(field + ".")]  # fmt: skip
    return max(match, key=len) if match else None


@dataclass(frozen=True)
class GridPoint:
    """One point of a sweep: its name (``key=value,…``), its values (in the order of the
    axes) and its config."""

    name: str
    values: tuple[Any, ...]
    config: dict[str, Any]


def grid_points(base: dict[str, Any], axes: list[tuple[str, list[Any]]]) -> list[GridPoint]:
    """The points of the Cartesian product of ``axes`` over ``base``, every config validated
    (a bad one raises a :class:`ConfigError` naming its grid key)."""
    if not axes:
        raise ConfigError("--grid", "give at least one KEY=V1,V2,… (e.g. optimizer.lr=0.01,0.1)")
    keys = [k for k, _ in axes]
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        point = tuple(zip(keys, combo, strict=True))
        cfg = base
        for key, value in point:
            cfg = set_key(cfg, key, value)
        try:
            load_config(cfg).canonical()  # the components' parameters too
        except ConfigError as exc:
            owner = _owner(exc.field, keys)
            if owner is None:
                raise ConfigError(f"--grid {_point_name(point)}",
                                  f"{exc.field}: {exc.message}") from None  # fmt: skip
            value = dict(point)[owner]
            detail = exc.message if exc.field == owner else f"{exc.field}: {exc.message}"
            raise ConfigError(f"--grid {owner}", f"value {value!r}: {detail}") from None
        points.append(GridPoint(_point_name(point), combo, cfg))
    return points


def read_base(path: Path) -> dict[str, Any]:
    """The sweep's base config as written in ``path`` (validated; defaults not filled in, so
    a grid key overrides what the file says)."""
    load_config(path).canonical()  # missing file, bad YAML, bad config: one line each
    data = load_yaml(Path(path).read_text(encoding="utf-8"), str(path))
    assert isinstance(data, dict)  # load_config accepted it
    return data
