"""Run configuration: a validated, hashable description of one experiment.

A config is a dict (or YAML file) with these sections (see ``docs/config.md``)::

    problem:   {name: logistic_regression, dataset: digits, l2: 1.0e-3}
    optimizer: {name: sgd, lr: 0.1}          # any numeric hyperparameter may be a list
    schedule:  {name: inverse_time, k: 0.01}  # optional, default constant
    batch:     {size: 32, sampling: without_replacement}
    clip:      {norm: 1.0}                    # optional: norm and/or value
    quantize:  {mode: stochastic, bits: 8}    # optional: the gradient's quantization
    chains: 64
    steps: 2000
    seed: 0
    streams:   {off: [dropout], seeds: {sampling: 7}}   # optional
    record:    {every: 20, objective: auto, average: false}
    dtype: float32
    device: cpu

Errors are :class:`sgdlab.errors.ConfigError` naming the field (``batch.size``) with a fix;
unknown keys get a "did you mean" suggestion.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sgdlab.errors import ConfigError
from sgdlab.input_limits import check_structure, load_yaml, read_config_text
from sgdlab.optim import optimizer_class, schedule_class
from sgdlab.problems import problem_class
from sgdlab.rng import STREAM_NAMES, Streams
from sgdlab.validation import shorten, validate_section

__all__ = ["HASH_VERSION", "LIMITS", "RunConfig", "load_config", "load_yaml"]

#: bumped whenever the same config would give different results (engine or component
#: changes), so that stores never serve runs computed by older code as current ones
HASH_VERSION = 3

#: sane bounds of the run's integers (``docs/config.md``): beyond them a config is a mistake,
#: not an experiment. Memory is checked separately, from the built problem
#: (:func:`sgdlab.engine.plan.prepare`).
LIMITS = {
    "chains": 1 << 20,
    "steps": 10**9,
    "batch.size": 1 << 24,
    "first_chain": 1 << 32,
    "seed": 1 << 128,  # a SeedSequence's entropy pool is 128 bits
    "record.every": 10**9,
    "record.average_start": 10**9,
}


def _normalize(value: Any) -> Any:
    """Per-chain lists of one repeated value are that value; numbers compare as floats."""
    if isinstance(value, list):
        items = [_normalize(v) for v in value]
        return items[0] if items and all(v == items[0] for v in items) else items
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _component(section: str, named: NamedSection) -> dict[str, Any]:
    """A named section validated by its component, with the component's defaults filled in."""
    if section == "problem":
        params_model = problem_class(named.name).Params
    elif section == "optimizer":
        params_model = optimizer_class(named.name).Params
    else:
        params_model = schedule_class(named.name).Params
    dumped = validate_section(params_model, named.params(), section).model_dump(mode="json")
    if section == "optimizer":
        dumped = {k: _normalize(v) for k, v in dumped.items()}
    return {"name": named.name, **dumped}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NamedSection(BaseModel):
    """A section with a ``name`` and free parameters validated by the named component."""

    model_config = ConfigDict(extra="allow")
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def full(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}


class BatchConfig(_Section):
    size: int | None = Field(
        32, gt=0, le=LIMITS["batch.size"], description="minibatch size b (ignored by 'full')"
    )
    sampling: Literal["auto", "with_replacement", "without_replacement", "full", "stream"] = Field(
        "auto",
        description="how minibatches are drawn (auto: without_replacement on a finite dataset, "
        "stream from a population)",
    )


class ClipConfig(_Section):
    norm: float | None = Field(None, gt=0, description="clip each chain's gradient to this L2 norm")
    value: float | None = Field(None, gt=0, description="clip each coordinate to ±value")


class QuantizeConfig(_Section):
    mode: Literal["none", "stochastic", "nearest", "bfloat16", "float16"] = Field(
        "none", description="quantize the gradient first: stochastic (unbiased) or nearest "
        "(biased) rounding to a bits-bit grid over ±max|g|, or a bfloat16/float16 round trip"
    )
    bits: int = Field(
        8, ge=2, le=24, description="bits of the sign-and-magnitude grid of 2^bits − 1 levels "
        "(stochastic, nearest)"
    )


class StreamsConfig(_Section):
    off: list[str] = Field(default_factory=list, description="random sources turned off")
    seeds: dict[str, int] = Field(default_factory=dict, description="per-stream seed overrides")

    @field_validator("off")
    @classmethod
    def _known_off(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in STREAM_NAMES:
                raise ValueError(
                    f"unknown stream {shorten(name)}; streams: {', '.join(STREAM_NAMES)}"
                )
        return sorted(set(v))  # a set of sources: order and repeats mean nothing

    @field_validator("seeds")
    @classmethod
    def _known_seeds(cls, v: dict[str, int]) -> dict[str, int]:
        for name, seed in v.items():
            if name not in STREAM_NAMES:
                raise ValueError(
                    f"unknown stream {shorten(name)}; streams: {', '.join(STREAM_NAMES)}"
                )
            if not 0 <= seed < LIMITS["seed"]:
                raise ValueError(
                    f"the seed of stream {name!r} must be in [0, 2^128), got {shorten(seed)}"
                )
        return v


class RecordConfig(_Section):
    every: int = Field(
        10, gt=0, le=LIMITS["record.every"], description="record metrics every this many steps"
    )
    objective: bool | Literal["auto"] = Field(
        "auto", description="record the full objective F(w), F(w) − F* and ‖w − w*‖ "
        "(auto: when affordable)"
    )
    average: bool = Field(False, description="also record the Polyak–Ruppert averaged iterate")
    average_start: int = Field(
        0, ge=0, le=LIMITS["record.average_start"], description="first step included in the average"
    )
    noise: bool = Field(False, description="record gradient-noise statistics of each chain")


class RunConfig(_Section):
    """The validated configuration of one run (see module docstring)."""

    name: str | None = Field(None, description="optional human label")
    problem: NamedSection
    optimizer: NamedSection = Field(default_factory=lambda: NamedSection(name="sgd", lr=0.01))
    schedule: NamedSection = Field(default_factory=lambda: NamedSection(name="constant"))
    batch: BatchConfig = Field(default_factory=BatchConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    chains: int = Field(16, gt=0, le=LIMITS["chains"], description="number of independent chains K")
    first_chain: int = Field(
        0, ge=0, le=LIMITS["first_chain"],
        description="index of the first chain (chain k draws the same numbers in any run)",
    )  # fmt: skip
    steps: int = Field(1000, gt=0, le=LIMITS["steps"], description="number of SGD steps T")
    seed: int | None = Field(
        0, ge=0, lt=LIMITS["seed"], description="root seed of all random streams"
    )
    streams: StreamsConfig = Field(default_factory=StreamsConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    dtype: Literal["float32", "float64"] = "float32"
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda")

    def canonical(self) -> dict[str, Any]:
        """JSON-able dict with every default filled in, the components' own included
        (what is hashed and stored): equivalent configs give equal dicts."""
        data = self.model_dump(mode="json", exclude={"name"})
        for key in ("problem", "optimizer", "schedule"):
            data[key] = _component(key, getattr(self, key))
        if data["batch"]["sampling"] == "full":
            data["batch"]["size"] = None  # ignored by full-batch sampling
        if data["quantize"]["mode"] == "none":
            del data["quantize"]  # no quantization: the hash of a run from before it existed
        elif data["quantize"]["mode"] in ("bfloat16", "float16"):
            data["quantize"]["bits"] = None  # the format fixes the precision
        return data

    def make_streams(self, entropy: int | str | None = None) -> Streams:
        """The run's named random streams: the one place a config becomes a :class:`Streams`.

        Args:
            entropy: the root entropy a stored run actually used (``RunResult.seed_entropy``,
                the store's ``seed_entropy``); ``None`` uses the config's ``seed`` (a ``None``
                seed then draws fresh OS entropy, which the streams record).
        """
        root = self.seed if entropy is None else int(entropy)
        return Streams(root, seeds=self.streams.seeds, off=frozenset(self.streams.off))

    def hash(self) -> str:
        """Stable SHA-256 (16 hex digits) of :meth:`canonical` and :data:`HASH_VERSION`."""
        canonical = self.canonical()
        payload = {"hash_version": HASH_VERSION, **canonical}
        files = [canonical["problem"].get(k) for k in ("path", "labels_path")]
        if any(files):  # a data file rewritten in place must not serve the old runs
            payload["data_files"] = [_file_digest(Path(f)) for f in files if f]
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes; for a folder, of its entries' names, sizes and mtimes."""
    h = hashlib.sha256()
    try:
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                if entry.is_file():
                    st = entry.stat()
                    h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        elif path.is_file():
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            return "missing"
    except OSError:  # unreadable: the problem's own loader says why, naming the field
        return "unreadable"
    return h.hexdigest()[:16]


def load_config(source: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
    """Turn a dict, a YAML path or a :class:`RunConfig` into a validated :class:`RunConfig`.

    Input is bounded first (:mod:`sgdlab.input_limits`: file size, nesting depth, size once
    YAML aliases are expanded, self-reference, duplicate keys); every error is a one-line
    :class:`ConfigError` naming the field, with any echoed value shortened."""
    if isinstance(source, RunConfig):
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        data = load_yaml(read_config_text(path), str(path))
    else:
        data = source
        check_structure(data)
    if not isinstance(data, dict):
        raise ConfigError("config", "must be a mapping with at least a 'problem' section")
    if data.get("problem") is None:
        raise ConfigError("problem", "missing: give at least problem: {name: ...}")
    for section in ("problem", "optimizer", "schedule"):
        value = data.get(section)
        if isinstance(value, str):
            data = {**data, section: {"name": value}}
        elif value is not None and (not isinstance(value, dict) or "name" not in value):
            raise ConfigError(section, "must be a mapping with a 'name' key")
    return validate_section(RunConfig, data, "")
