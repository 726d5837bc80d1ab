"""Property-based fuzzing of ``sgdlab run``'s input handling (Hypothesis, fixed seeds).

Configs are generated from small valid ones by mutations — wrong types, missing and unknown
keys, extreme and non-finite numbers, wrong enums, deep nesting, unicode, binary strings,
whole sections replaced — and written as YAML (sometimes with aliases, duplicate keys, an
alias bomb, truncation or binary bytes spliced in). Each goes through the command line
in-process (``CliRunner``), into its own fresh store. Every case must end in one of:

* **clean error**: exit 2, exactly one output line ``error: <field>: …`` of at most
  ``MAX_ERROR_CHARS`` characters, the field a config key (or ``config``), and *no store
  file* (nothing half-written);
* **complete**: ``--check`` exits 0 and the run exits 0 with a ``complete`` run in the store
  (only when the config's work — chains × steps × problem size — is small enough for the
  suite; larger valid configs end after ``--check``, counted as **checked**);

never a traceback (any other exit or exception) and never a **hang** (a case over
:data:`CASE_SECONDS` is stopped by an alarm and fails). The outcome counts are printed
(``pytest -s``) and written to ``$SGDLAB_FUZZ_REPORT`` when set.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sgdlab.cli import app
from sgdlab.cli._util import MAX_ERROR_CHARS
from sgdlab.config import RunConfig
from sgdlab.errors import ConfigError
from sgdlab.input_limits import load_yaml
from sgdlab.optim import OPTIMIZERS, SCHEDULES
from sgdlab.problems import PROBLEMS
from sgdlab.store import Store
from sgdlab.validation import _key_text

runner = CliRunner()

#: a case taking longer than this is a hang
CASE_SECONDS = 20
#: the largest chains × steps × (problem size) actually run by the suite
MAX_WORK = 2e5

BASES: list[dict[str, Any]] = [
    {"problem": {"name": "quadratic", "dim": 2}, "optimizer": {"name": "sgd", "lr": 0.1},
     "batch": {"size": 2, "sampling": "stream"}, "chains": 2, "steps": 5},
    {"problem": {"name": "logistic_regression", "dataset": "iris"},
     "optimizer": {"name": "adam", "lr": 0.01}, "batch": {"size": 4}, "chains": 2, "steps": 4},
    {"problem": {"name": "mlp", "dataset": "synthetic", "n_samples": 40, "n_features": 3,
                 "widths": [4], "dropout": 0.1},
     "optimizer": {"name": "momentum", "lr": 0.05}, "batch": {"size": 4}, "chains": 2,
     "steps": 3, "record": {"every": 1, "noise": True}},
    {"problem": {"name": "double_well"}, "optimizer": {"name": "sgld", "lr": 0.01},
     "schedule": {"name": "cosine", "horizon": 10}, "batch": {"size": 2, "sampling": "stream"},
     "chains": 3, "steps": 6, "clip": {"norm": 1.0}},
    {"problem": {"name": "linear_regression", "dim": 3, "n": 20},
     "optimizer": {"name": "rmsprop", "lr": 0.01}, "batch": {"size": 5},
     "chains": 2, "steps": 4, "record": {"average": True}, "dtype": "float64"},
]  # fmt: skip

TOP_KEYS = list(RunConfig.model_fields)
SECTION_KEYS = {
    "batch": ["size", "sampling"], "clip": ["norm", "value"], "streams": ["off", "seeds"],
    "record": ["every", "objective", "average", "average_start", "noise"],
}  # fmt: skip
COMPONENT_KEYS = {
    "problem": sorted({k for c in PROBLEMS.values() for k in c.Params.model_fields}),
    "optimizer": sorted({k for c in OPTIMIZERS.values() for k in c.Params.model_fields}),
    "schedule": sorted({k for c in SCHEDULES.values() for k in c.Params.model_fields}),
}
NAMES = {"problem": list(PROBLEMS), "optimizer": list(OPTIMIZERS), "schedule": list(SCHEDULES)}
#: every dotted key a config can have (and the fields an error may name)
FIELDS = {"config", "name", *TOP_KEYS} | {
    f"{s}.{k}" for s, keys in {**SECTION_KEYS, **COMPONENT_KEYS}.items() for k in keys
} | {f"{s}.name" for s in NAMES}

WORDS = ["auto", "full", "stream", "with_replacement", "cuda", "cuda:3", "mps", "xla", "meta",
         "float16", "sgd", "adam", "quadratic", "digits", "synthetic", "npz", "mnist", "log",
         "dropout", "sampling", "inject", "probe", "data", "/dev/zero", "/", ".", "", "~",
         "/nonexistent/x.npz", "true", "null", "1e400", "-0", "０", "√2", "é", "\u202e", "\x00",
         "a" * 300]  # fmt: skip
INTS = [0, 1, -1, 2, 7, 2**31, 2**63, -(2**63), 10**9, 10**30, 2**128]
FLOATS = [0.0, -0.0, 1e-300, 1e300, 1.5, -2.5, math.inf, -math.inf, math.nan]

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(INTS), st.integers(-1000, 1000),
    st.integers(-(2**70), 2**70), st.sampled_from(FLOATS), st.floats(allow_nan=True),
    st.sampled_from(WORDS), st.text(max_size=12), st.binary(max_size=8),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _key_paths(cfg: dict[str, Any]) -> list[tuple[str, ...]]:
    paths = [(k,) for k in TOP_KEYS]
    for section, keys in {**SECTION_KEYS, **COMPONENT_KEYS}.items():
        paths += [(section, k) for k in keys]
    paths += [(s, "name") for s in NAMES]
    return paths


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A mutated config and how it is to be written (``plain``, ``text`` edits)."""
    cfg = json.loads(json.dumps(draw(st.sampled_from(BASES))))  # a deep copy
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "set", "set", "name", "unknown", "delete", "section",
                                   "deep", "share"]))  # fmt: skip
        path = draw(st.sampled_from(_key_paths(cfg)))
        parent = cfg
        for part in path[:-1]:
            if not isinstance(parent.get(part), dict):
                parent[part] = {"name": draw(st.sampled_from(NAMES[part]))} if part in NAMES else {}
            parent = parent[part]
        key = path[-1]
        if op == "set":
            parent[key] = draw(values)
        elif op == "name":
            section = draw(st.sampled_from(list(NAMES)))
            value = draw(st.one_of(st.sampled_from(NAMES[section]), scalars))
            cfg[section] = {**(cfg.get(section) or {}), "name": value} if isinstance(
                cfg.get(section), dict) else {"name": value}  # fmt: skip
        elif op == "unknown":
            parent[draw(st.text(min_size=1, max_size=20))] = draw(scalars)
        elif op == "delete":
            parent.pop(key, None)
        elif op == "section":
            cfg[draw(st.sampled_from(TOP_KEYS))] = draw(values)
        elif op == "deep":
            depth = draw(st.sampled_from([3, 10, 40, 200]))
            nested: Any = draw(scalars)
            for _ in range(depth):
                nested = [nested]
            parent[key] = nested
        else:  # the same list object twice: YAML writes an anchor and an alias
            shared = draw(st.lists(scalars, min_size=1, max_size=3))
            parent[key] = shared
            cfg.setdefault("name", None)
            cfg["streams"] = {"off": shared} if draw(st.booleans()) else cfg.get("streams", {})
    edit = draw(st.sampled_from(["plain"] * 6 + ["bomb", "dup", "cut", "binary", "tab"]))
    return cfg, edit


def _yaml_text(cfg: dict[str, Any], edit: str, seed: int) -> bytes:
    try:
        text = yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False, width=1000)
    except (yaml.YAMLError, RecursionError):
        text = json.dumps(cfg, default=repr)
    if edit == "bomb":
        lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
        text = "\n".join(lines) + "\n" + text.replace("chains:", "chains: *a7\nold_chains:", 1)
    elif edit == "dup":
        text = text + "chains: 3\n" + ("chains: 4\n" if "chains" not in text else "")
    elif edit == "cut":
        text = text[: max(1, (seed * 7919) % max(2, len(text)))]
    elif edit == "tab":
        text = text.replace("  ", "\t", 1)
    data = text.encode("utf-8", "surrogatepass")
    if edit == "binary":
        at = seed % max(1, len(data))
        data = data[:at] + bytes([0xFF, 0x00, 0xFE, 0x80]) + data[at:]
    return data


def _work(cfg: dict[str, Any]) -> float:
    """chains × steps × problem size of a config that passed ``--check``."""
    size = 1.0
    for key in ("dim", "n_samples", "n", "n_features"):
        value = (cfg.get("problem") or {}).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            size = max(size, float(value))
    for width in (cfg.get("problem") or {}).get("widths") or []:
        if isinstance(width, int | float):
            size = max(size, float(width) * 10)
    batch = (cfg.get("batch") or {}).get("size") if isinstance(cfg.get("batch"), dict) else None
    b = float(batch) if isinstance(batch, int) and not isinstance(batch, bool) else 32.0
    chains = cfg.get("chains", 16)
    steps = cfg.get("steps", 1000)
    if not all(isinstance(v, int) for v in (chains, steps)):
        return math.inf
    return float(chains) * float(steps) * size * max(b, 1.0) / 8


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang(f"case took more than {CASE_SECONDS}s")


def _document_keys(path: Path, cfg: dict[str, Any]) -> set[str]:
    """Top-level keys of the written document as an error would name them (YAML may read a
    key differently from the dict it was written from: a NEL character folds to a space)."""
    keys: set[Any] = set(cfg) | {f"x{i}" for i in range(8)} | {"old_chains"}
    try:
        parsed = load_yaml(path.read_bytes().decode("utf-8"))
    except (ConfigError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        keys |= set(parsed)
    return {str(k) for k in keys} | {_key_text(k) for k in keys}


FIELD_LINE = re.compile(r"^error: (?P<field>.+?): .+")  # a field with a colon is quoted


def _classify(folder: Path, cfg: dict[str, Any], edit: str, seed: int) -> str:
    path, store = folder / "c.yaml", folder / "s.duckdb"
    path.write_bytes(_yaml_text(cfg, edit, seed))
    alarm = hasattr(signal, "SIGALRM")  # POSIX; elsewhere pytest-timeout catches a hang
    previous = signal.signal(signal.SIGALRM, _alarm) if alarm else None
    if alarm:
        signal.alarm(CASE_SECONDS)
    outcome = "?"
    try:
        out = runner.invoke(app, ["run", str(path), "--store", str(store), "--check"])
        if out.exit_code == 0 and out.exception is None:
            if _work(cfg) > MAX_WORK:
                outcome = "checked"
            else:
                out = runner.invoke(app, ["run", str(path), "--store", str(store)])
                outcome = "complete"
    finally:
        if alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    if isinstance(out.exception, _Hang):
        return "hang"
    text = out.output
    assert "Traceback" not in text, text
    if out.exit_code == 2:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert len(lines) == 1, text
        assert len(lines[0]) <= MAX_ERROR_CHARS, lines[0][:200]
        m = FIELD_LINE.match(lines[0])
        assert m is not None, lines[0]
        field = m.group("field")  # a config field, or a key the document itself has
        named = FIELDS | _document_keys(path, cfg)
        assert any(field == k or field.startswith(f"{k}.") for k in named), field
        assert not store.exists(), "a refused config wrote to the store"
        return "clean error"
    assert out.exit_code == 0 and out.exception is None, (out.exit_code, repr(out.exception),
                                                          text[-2000:])  # fmt: skip
    if outcome == "complete":
        with Store(store, read_only=True) as db:
            (row,) = db.runs()
        assert row["status"] == "complete", row
    return outcome


def _report(counts: Counter, seconds: float, label: str) -> None:
    summary = {"label": label, "cases": sum(counts.values()), **counts,
               "traceback": 0, "hang": counts.get("hang", 0), "seconds": round(seconds, 1)}
    print(f"\nfuzz {label}: {json.dumps(summary)}")
    target = os.environ.get("SGDLAB_FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(summary) + "\n")


def _fuzz(
    tmp_path_factory: pytest.TempPathFactory, examples: int, label: str, fixed_seed: int
) -> Counter:
    counts: Counter = Counter()
    start = time.perf_counter()

    @seed(fixed_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=configs(), seed=st.integers(0, 10**6))
    def check(case: tuple[dict[str, Any], str], seed: int) -> None:
        cfg, edit = case
        outcome = _classify(tmp_path_factory.mktemp("fuzz"), cfg, edit, seed)
        counts[outcome] += 1
        assert outcome != "hang", cfg

    check()
    _report(counts, time.perf_counter() - start, label)
    return counts


@pytest.mark.timeout(300)
def test_fuzzed_configs_end_cleanly(tmp_path_factory):
    """400 cases from a fixed seed (about 25 s on 2 cores): clean errors and complete runs
    only."""
    counts = _fuzz(tmp_path_factory, 400, "make-test", fixed_seed=16)
    assert counts["clean error"] > 0 and counts["complete"] > 0, counts


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fuzzed_configs_larger_budget(tmp_path_factory):
    """The same property from another fixed seed with a larger budget
    (``$SGDLAB_FUZZ_EXAMPLES``, default 800: about a minute)."""
    examples = int(os.environ.get("SGDLAB_FUZZ_EXAMPLES", "800"))
    counts = _fuzz(tmp_path_factory, examples, "slow", fixed_seed=1616)
    assert counts["clean error"] > 0, counts
