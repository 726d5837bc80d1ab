"""Everything a run needs, built and checked from its config before anything is written.

The checks that need more than the config's own fields happen here, each a one-line
:class:`~sgdlab.errors.ConfigError` naming the field: the device (present, supported), the
memory the run needs (:mod:`sgdlab.engine.memory`: before the problem is built, then with
its actual sizes, before any chain, batch or record is allocated), and settings that would
silently record nothing (``record.noise`` with one sample per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from sgdlab.config import RunConfig, load_config
from sgdlab.engine import memory
from sgdlab.engine.probes import ObjectiveProbe
from sgdlab.errors import ConfigError
from sgdlab.optim import Optimizer, make_optimizer
from sgdlab.problems import Problem, build_problem, problem_class
from sgdlab.rng import Streams
from sgdlab.sources import RunSetup, Sampler, StepDraws, check_streams, make_sampler, resolve_mode
from sgdlab.validation import clip, shorten, validate_section

__all__ = ["Plan", "prepare"]


@dataclass
class Plan:
    """A validated run: config, streams, problem, optimizer, and its bound sources.

    Attributes:
        chain_ids: the chains' numbers (``first_chain … first_chain + K − 1``): chain k
            draws the same numbers in any ensemble.
        sampler: the ``sampling`` source; ``step_draws``: the ``loss``/``update`` sources.
        memory: the estimate of the run's large buffers (:mod:`sgdlab.engine.memory`).
    """

    config: RunConfig
    streams: Streams
    problem: Problem
    optimizer: Optimizer
    chain_ids: range
    sampler: Sampler
    step_draws: StepDraws
    objective: ObjectiveProbe
    dtype: torch.dtype
    device: torch.device
    memory: memory.MemoryEstimate | None = None


def _device(name: str, dtype: torch.dtype) -> torch.device:
    """The run's torch device, refused in one line when it is malformed, not built into this
    torch, or absent from this machine."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(
            "device", f"unknown device {shorten(name)}: use cpu, cuda or cuda:<index>"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", "cuda was asked for but no GPU is available: use cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                "device", f"{device} does not exist: this machine has {count} GPU(s), "
                f"cuda:0 … cuda:{count - 1}",
            )  # fmt: skip
        return device
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device", "mps (Apple GPU) is not available here: use cpu")
        if dtype == torch.float64:
            raise ConfigError("dtype", "float64 is not supported on mps: use float32 or cpu")
        return device
    raise ConfigError(
        "device", f"device type {device.type!r} is not supported by sgdlab: use cpu, cuda or mps"
    )


def _objective(cfg: RunConfig, problem: Problem, dtype: torch.dtype, device: torch.device):
    want = cfg.record.objective
    has_objective = problem.finite or problem.closed_objective(
        torch.zeros(1, problem.dim, dtype=dtype, device=device)
    ) is not None
    if want is True and not has_objective:
        raise ConfigError(
            "record.objective", f"problem {problem.name!r} has no computable objective"
        )
    enabled = has_objective and (want is True or (want == "auto" and problem.objective_affordable))
    return ObjectiveProbe(problem, enabled)


def prepare(config: RunConfig | dict | str | Path) -> Plan:
    """Validate a config and build its problem, optimizer and sources.

    Raises :class:`ConfigError` (naming the field) on any invalid value; nothing is written.
    """
    cfg = load_config(config)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    device = _device(cfg.device, dtype)
    if cfg.record.average and cfg.record.average_start > cfg.steps:
        raise ConfigError(
            "record.average_start",
            f"{cfg.record.average_start} is after the last step ({cfg.steps}): nothing would be "
            "averaged; use a value ≤ steps",
        )
    params = validate_section(problem_class(cfg.problem.name).Params, cfg.problem.params(),
                              "problem")  # fmt: skip
    memory.check_build(params, dtype.itemsize)
    streams = cfg.make_streams()
    try:
        problem = build_problem(cfg.problem.name, cfg.problem.params(), streams, dtype)
        problem.to(device)
    except (MemoryError, RuntimeError) as exc:
        _refuse_allocation_failure(exc, "problem")
        raise
    K = cfg.chains
    ids = range(cfg.first_chain, cfg.first_chain + K)
    mode = resolve_mode(problem, cfg.batch.sampling)
    batch_size = problem.n if mode == "full" and problem.n is not None else cfg.batch.size
    if cfg.record.noise and batch_size is not None and batch_size < 2:
        raise ConfigError(
            "record.noise", f"needs batch.size ≥ 2 (the noise statistics are a covariance over "
            f"the batch), got batch.size {batch_size}: raise batch.size or drop record.noise",
        )  # fmt: skip
    objective = _objective(cfg, problem, dtype, device)
    n_metrics = 3 + 3 * objective.enabled * (1 + cfg.record.average) + 5 * cfg.record.noise
    est = memory.estimate(cfg, problem, mode, batch_size or 1, n_metrics)
    memory.check_run(est, device)
    optimizer = make_optimizer(
        cfg.optimizer.full(), cfg.schedule.full(), cfg.clip.model_dump(), K, cfg.steps, dtype,
        device,
    )  # fmt: skip
    if cfg.quantize.mode != "none":
        rule = optimizer.rule.with_quantization(cfg.quantize.mode, cfg.quantize.bits)  # type: ignore[attr-defined]
        optimizer = replace(optimizer, rule=rule)
    sampler = make_sampler(
        problem, cfg.batch.sampling, cfg.batch.size, K, streams, str(device), cfg.first_chain
    )
    setup = RunSetup(problem, optimizer.rule, mode, sampler.batch_size)
    sources = check_streams(cfg.streams.off, setup)
    return Plan(
        config=cfg,
        streams=streams,
        problem=problem,
        optimizer=optimizer,
        chain_ids=ids,
        sampler=sampler,
        step_draws=StepDraws(sources, setup, streams, ids, dtype, device),
        objective=objective,
        dtype=dtype,
        device=device,
        memory=est,
    )


def _refuse_allocation_failure(exc: BaseException, field: str) -> None:
    """An allocation that failed (torch's "can't allocate memory", CUDA out of memory) as a
    one-line :class:`ConfigError`; other errors are left to the caller."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "allocate" in text or "out of memory" in text.lower():
        raise ConfigError(
            field, f"ran out of memory ({clip(text or type(exc).__name__, 120)}); use a smaller "
            "problem, fewer chains or a smaller batch",
        ) from None  # fmt: skip
