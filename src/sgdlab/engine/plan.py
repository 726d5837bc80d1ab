"""Everything a run needs, built and checked from its config before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sgdlab.config import RunConfig, load_config
from sgdlab.engine.probes import ObjectiveProbe
from sgdlab.errors import ConfigError
from sgdlab.optim import Optimizer, make_optimizer
from sgdlab.problems import Problem, build_problem
from sgdlab.rng import Streams
from sgdlab.sources import RunSetup, Sampler, StepDraws, check_streams, make_sampler, resolve_mode

__all__ = ["Plan", "prepare"]


@dataclass
class Plan:
    """A validated run: config, streams, problem, optimizer, and its bound sources.

    Attributes:
        chain_ids: the chains' numbers (``first_chain … first_chain + K − 1``): chain k
            draws the same numbers in any ensemble.
        sampler: the ``sampling`` source; ``step_draws``: the ``loss``/``update`` sources.
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


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("device", f"unknown device {name!r}: use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but no GPU is available: use cpu")
    return device


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
    device = _device(cfg.device)
    if cfg.record.average and cfg.record.average_start > cfg.steps:
        raise ConfigError(
            "record.average_start",
            f"{cfg.record.average_start} is after the last step ({cfg.steps}): nothing would be "
            "averaged; use a value ≤ steps",
        )
    streams = cfg.make_streams()
    problem = build_problem(cfg.problem.name, cfg.problem.params(), streams, dtype)
    problem.to(device)
    K = cfg.chains
    ids = range(cfg.first_chain, cfg.first_chain + K)
    optimizer = make_optimizer(
        cfg.optimizer.full(), cfg.schedule.full(), cfg.clip.model_dump(), K, cfg.steps, dtype,
        device,
    )  # fmt: skip
    sampler = make_sampler(
        problem, cfg.batch.sampling, cfg.batch.size, K, streams, str(device), cfg.first_chain
    )
    setup = RunSetup(problem, optimizer.rule, resolve_mode(problem, cfg.batch.sampling),
                     sampler.batch_size)  # fmt: skip
    sources = check_streams(cfg.streams.off, setup)
    return Plan(
        config=cfg,
        streams=streams,
        problem=problem,
        optimizer=optimizer,
        chain_ids=ids,
        sampler=sampler,
        step_draws=StepDraws(sources, setup, streams, ids, dtype, device),
        objective=_objective(cfg, problem, dtype, device),
        dtype=dtype,
        device=device,
    )
