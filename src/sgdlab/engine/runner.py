"""The vectorized ensemble runner: K independent SGD chains in one set of tensor ops.

One step for all chains (no Python loop over chains):

1. draw each chain's minibatch ``(x [K,b,...], y [K,b])`` from its own ``sampling``
   generator, and any per-step noise the problem declares (dropout, label noise);
2. minibatch loss ``L_k = (1/b) Σ_i f(W_k; ξ_{k,i})`` and its gradient
   (:meth:`Problem.loss_and_grad`: a closed form where the problem has one, else autograd —
   since the chains are independent, ∂(Σ_k L_k)/∂W gives every chain's gradient in one
   backward pass);
3. gradient clipping (by global norm per chain, then by value) if configured;
4. the functional update rule with this step's per-chain learning rate
   η_t = lr0_k · s(t) (schedule ``s``), with Langevin noise from the ``inject`` stream for
   SGLD;
5. divergence: a chain whose loss or new parameters are not finite is marked diverged at
   step t and frozen at its last finite parameters; the others go on. (A non-finite
   gradient makes the new parameters non-finite, so it is caught by the second check.)

Probes (:mod:`sgdlab.engine.probes`) record on the cadence ``record.every``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sgdlab.config import RunConfig, load_config
from sgdlab.engine.noise_probe import noise_statistics
from sgdlab.engine.probes import ObjectiveProbe, Recorder
from sgdlab.engine.result import RunResult
from sgdlab.errors import ConfigError
from sgdlab.noise.draws import ChainDraws, uniform_draws
from sgdlab.noise.sampling import Sampler, make_sampler
from sgdlab.problems import Problem, build_problem
from sgdlab.rng import Streams

Progress = Callable[[int, int], None]
#: update rules whose effective step under momentum m is η/(1−m)
_HEAVY_BALL = ("momentum", "nesterov")
#: update rules for which the effective temperature η·tr Σ/(2bd) is meaningful
_LANGEVIN_RULES = ("sgd", "momentum", "nesterov", "sgld")


@dataclass
class Plan:
    """Everything a run needs, built and validated before anything is written."""

    config: RunConfig
    streams: Streams
    problem: Problem
    rule: Any
    lr0: Tensor
    schedule: Callable[[int], float]
    sampler: Sampler
    step_draws: dict[str, ChainDraws]
    inject: ChainDraws | None
    objective: ObjectiveProbe
    dtype: torch.dtype
    device: torch.device


def _initial_params(problem: Problem, streams: Streams, chain_ids: range) -> Tensor:
    chains = len(chain_ids)
    if streams.enabled("init"):
        gens = streams.generators("init", chain_ids)
        return torch.stack([problem.init_params(g) for g in gens])
    w0 = problem.init_params(None)
    return w0.unsqueeze(0).repeat(chains, 1)


def prepare(config: RunConfig | dict | str | Path) -> Plan:
    """Validate a config and build its problem, optimizer, schedule and samplers.

    Raises :class:`ConfigError` (naming the field) on any invalid value; nothing is written.
    """
    from sgdlab.optim import build_optimizer, build_schedule

    cfg = load_config(config)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    try:
        device = torch.device(cfg.device)
    except RuntimeError:
        raise ConfigError("device", f"unknown device {cfg.device!r}: use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but no GPU is available: use cpu")
    if cfg.record.average and cfg.record.average_start > cfg.steps:
        raise ConfigError(
            "record.average_start",
            f"{cfg.record.average_start} is after the last step ({cfg.steps}): nothing would be "
            "averaged; use a value ≤ steps",
        )
    streams = Streams(cfg.seed, seeds=cfg.streams.seeds, off=frozenset(cfg.streams.off))
    problem = build_problem(cfg.problem.name, cfg.problem.params(), streams, dtype)
    problem.to(device)
    K = cfg.chains
    ids = range(cfg.first_chain, cfg.first_chain + K)
    rule, lr0 = build_optimizer(cfg.optimizer.full(), K, dtype, device)
    schedule = build_schedule(cfg.schedule.full(), cfg.steps)
    sampler = make_sampler(
        problem, cfg.batch.sampling, cfg.batch.size, K, streams, str(device), cfg.first_chain
    )
    step_draws: dict[str, ChainDraws] = {}
    for key, (stream, shape, kind) in problem.step_noise(sampler.batch_size).items():
        if streams.enabled(stream):
            gens = streams.generators(stream, ids)
            step_draws[key] = uniform_draws(gens, shape, dtype, device, kind)
    inject = None
    if getattr(rule, "needs_noise", False) and streams.enabled("inject"):
        inject = uniform_draws(
            streams.generators("inject", ids), (problem.dim,), dtype, device, "normal"
        )
    want = cfg.record.objective
    has_objective = problem.finite or problem.closed_objective(
        torch.zeros(1, problem.dim, dtype=dtype, device=device)
    ) is not None
    if want is True and not has_objective:
        raise ConfigError(
            "record.objective", f"problem {problem.name!r} has no computable objective"
        )
    enabled = has_objective and (want is True or (want == "auto" and problem.objective_affordable))
    return Plan(
        config=cfg,
        streams=streams,
        problem=problem,
        rule=rule,
        lr0=lr0,
        schedule=schedule,
        sampler=sampler,
        step_draws=step_draws,
        inject=inject,
        objective=ObjectiveProbe(problem, enabled),
        dtype=dtype,
        device=device,
    )


def _select_state(alive: Tensor, new: Any, old: Any) -> Any:
    """Keep the old optimizer state of chains that are not alive (tensors shaped [K, ...])."""
    if isinstance(new, tuple) and hasattr(new, "_fields"):
        return type(new)(*(_select_state(alive, n, o) for n, o in zip(new, old, strict=True)))
    if isinstance(new, Tensor) and new.dim() >= 1 and new.shape[0] == alive.shape[0]:
        mask = alive.view(-1, *([1] * (new.dim() - 1)))
        return torch.where(mask, new, old)
    return new


class _Loop(NamedTuple):
    W: Tensor
    avg: Tensor | None
    alive: Tensor
    diverged_at: Tensor
    recorder: Recorder
    seconds: float


def execute(plan: Plan, progress: Progress | None = None) -> _Loop:
    """Run the plan's steps; returns final parameters, average, divergence and metrics."""
    from sgdlab.optim import clip_by_global_norm, clip_by_value

    cfg, problem, rule = plan.config, plan.problem, plan.rule
    K, T, every = cfg.chains, cfg.steps, cfg.record.every
    ids = range(cfg.first_chain, cfg.first_chain + K)
    W = _initial_params(problem, plan.streams, ids).to(plan.device, plan.dtype)
    state = rule.init(W)
    alive = torch.ones(K, dtype=torch.bool, device=plan.device)
    diverged_at = torch.full((K,), -1, dtype=torch.long, device=plan.device)
    rec = Recorder()
    averaging = cfg.record.average
    avg = torch.zeros_like(W) if averaging else None
    n_avg = 0
    clip_norm, clip_value = cfg.clip.norm, cfg.clip.value
    tick = max(1, T // 200)
    start = time.perf_counter()
    for t in range(T + 1):
        if avg is not None and t >= cfg.record.average_start:
            n_avg += 1
            avg = avg + (W - avg) / n_avg
        recording = t % every == 0 or t == T
        if recording:
            dead = ~alive
            plan.objective.record(rec, t, W, dead)
            if avg is not None and n_avg > 0:
                plan.objective.record(rec, t, avg, dead, prefix="avg_")
        if t == T:
            break
        x, y = plan.sampler.next()
        noise = {key: draws.next()[0] for key, draws in plan.step_draws.items()} or None
        loss, grad = problem.loss_and_grad(W, x, y, noise)
        lr = plan.lr0 * plan.schedule(t)
        ok = torch.isfinite(loss)
        if recording:
            dead = ~alive
            rec.add("loss", t, loss, dead)
            rec.add("grad_norm", t, torch.linalg.vector_norm(grad, dim=1), dead)
            rec.add("lr", t, lr.expand(K) if lr.dim() == 0 else lr, dead)
            if cfg.record.noise and plan.sampler.batch_size > 1:
                # heavy-ball momentum m scales the step to η/(1−m); other rules have no m
                momentum = getattr(rule, "momentum", 0.0) if rule.name in _HEAVY_BALL else 0.0
                stats = noise_statistics(
                    problem, W, x, y, lr.expand(K), momentum, plan.sampler.population
                )
                if rule.name not in _LANGEVIN_RULES:
                    stats.pop("noise_temperature")  # the SGD–Langevin analogy needs plain steps
                for key, value in stats.items():
                    rec.add(key, t, value, dead)
        if clip_norm is not None:
            grad = clip_by_global_norm(grad, clip_norm)
        if clip_value is not None:
            grad = clip_by_value(grad, clip_value)
        inj = plan.inject.next()[0] if plan.inject is not None else None
        W_new, state_new = rule.update(grad, state, W, lr, inj)
        now_alive = alive & ok & torch.isfinite(W_new).all(dim=1)
        diverged_at = torch.where(alive & ~now_alive, t, diverged_at)
        W = torch.where(now_alive.unsqueeze(1), W_new, W)
        state = _select_state(now_alive, state_new, state)
        alive = now_alive
        if progress is not None and (t + 1) % tick == 0:
            progress(t + 1, T)
    seconds = time.perf_counter() - start
    if progress is not None:
        progress(T, T)
    return _Loop(W, avg, alive, diverged_at, rec, seconds)


def run(
    config: RunConfig | dict | str | Path,
    store: Any = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> RunResult:
    """Run K chains of a config and return the :class:`RunResult`.

    Args:
        config: a dict, a YAML path or a validated :class:`RunConfig`.
        store: ``None`` (keep results in memory only), a path to a DuckDB file, or an open
            :class:`sgdlab.store.Store`. A stored run is listed as complete only after its
            metrics and parameters are all written (one transaction).
        progress: optional ``callback(step, total)``.
        name: optional label stored with the run.

    Example:
        >>> res = run({"problem": {"name": "quadratic", "dim": 2},
        ...            "optimizer": {"name": "sgd", "lr": 0.1}, "chains": 4, "steps": 50,
        ...            "batch": {"size": 8, "sampling": "stream"}})
        >>> steps, values = res.metric("suboptimality")
        >>> values.shape
        (4, 6)
    """
    from sgdlab.store import open_store

    plan = prepare(config)
    cfg = plan.config
    canonical = cfg.canonical()
    run_id = uuid.uuid4().hex[:12]
    db = open_store(store) if store is not None else None
    owns = db is not None and not hasattr(store, "begin_run")
    try:
        if db is not None:
            db.begin_run(
                run_id,
                kind="engine",
                name=name or cfg.name,
                config=canonical,
                config_hash=cfg.hash(),
                streams=plan.streams.describe(),
                chains=cfg.chains,
                steps=cfg.steps,
                problem=plan.problem.describe(),
            )
        try:
            loop = execute(plan, progress)
            result = RunResult(
                run_id=run_id,
                config=canonical,
                config_hash=cfg.hash(),
                metrics=loop.recorder.result(),
                final_params=loop.W.detach().cpu(),
                diverged_at=loop.diverged_at.cpu().numpy(),
                seed_entropy=str(plan.streams.entropy),
                wall_seconds=loop.seconds,
                average_params=None if loop.avg is None else loop.avg.detach().cpu(),
                store_path=None if db is None else db.path,
            )
            if db is not None:
                db.complete_run(result)
        except BaseException as exc:
            if db is not None:
                db.fail_run(run_id, f"{type(exc).__name__}: {exc}")
            raise
        return result
    finally:
        if owns and db is not None:
            db.close()
