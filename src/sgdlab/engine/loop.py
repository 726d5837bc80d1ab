"""The vectorized ensemble loop: K independent SGD chains in one set of tensor ops.

One step for all chains (no Python loop over chains):

1. the sources' draws for this step: each chain's minibatch ``(x [K,b,...], y [K,b])`` from
   its own ``sampling`` generator, and the per-step ``loss`` and ``update`` draws
   (dropout masks, augmentation, dynamic label noise; injected noise, stochastic rounding)
   from theirs (:mod:`sgdlab.sources`);
2. minibatch loss ``L_k = (1/b) Σ_i f(W_k; ξ_{k,i})`` and its gradient
   (:meth:`Problem.loss_and_grad`: a closed form where the problem has one, else autograd —
   since the chains are independent, ∂(Σ_k L_k)/∂W gives every chain's gradient in one
   backward pass);
3. the optimizer's update: η_t = lr0_k · s(t), then the rule's transform chain
   (quantization of the gradient, clipping, weight decay, momentum or preconditioning, the
   step, injected noise; :mod:`sgdlab.optim.transforms`);
4. divergence: a chain whose loss or new parameters are not finite is marked diverged at
   step t and frozen at its last finite parameters; the others go on. (A non-finite
   gradient makes the new parameters non-finite, so it is caught by the second check.)

Probes (:mod:`sgdlab.engine.probes`) record on the cadence ``record.every``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sgdlab.engine.noise_probe import noise_statistics
from sgdlab.engine.plan import Plan
from sgdlab.engine.recorder import Recorder
from sgdlab.sources import initial_params

__all__ = ["Loop", "Progress", "execute"]

Progress = Callable[[int, int], None]


def _select_state(alive: Tensor, new: Any, old: Any) -> Any:
    """Keep the old optimizer state of chains that are not alive (tensors shaped [K, ...])."""
    if isinstance(new, tuple):
        parts = [_select_state(alive, n, o) for n, o in zip(new, old, strict=True)]
        return type(new)._make(parts) if hasattr(new, "_make") else type(new)(parts)
    if isinstance(new, Tensor) and new.dim() >= 1 and new.shape[0] == alive.shape[0]:
        mask = alive.view(-1, *([1] * (new.dim() - 1)))
        return torch.where(mask, new, old)
    return new


class Loop(NamedTuple):
    """What :func:`execute` returns: final parameters, average, divergence and metrics."""

    W: Tensor
    avg: Tensor | None
    alive: Tensor
    diverged_at: Tensor
    recorder: Recorder
    seconds: float


def _record_noise(plan: Plan, rec: Recorder, t: int, W: Tensor, x: Tensor, y: Tensor,
                  lr: Tensor, dead: Tensor) -> None:  # fmt: skip
    rule = plan.optimizer.rule
    K = W.shape[0]
    stats = noise_statistics(
        plan.problem, W, x, y, lr.expand(K), rule.effective_momentum, plan.sampler.population
    )
    if not rule.plain_step:
        stats.pop("noise_temperature")  # the SGD–Langevin analogy needs plain steps
    for key, value in stats.items():
        rec.add(key, t, value, dead)


def execute(plan: Plan, progress: Progress | None = None) -> Loop:
    """Run the plan's steps; returns final parameters, average, divergence and metrics."""
    cfg, problem = plan.config, plan.problem
    rule = plan.optimizer.rule
    K, T, every = cfg.chains, cfg.steps, cfg.record.every
    W = initial_params(problem, plan.streams, plan.chain_ids).to(plan.device, plan.dtype)
    state = rule.init(W)
    alive = torch.ones(K, dtype=torch.bool, device=plan.device)
    diverged_at = torch.full((K,), -1, dtype=torch.long, device=plan.device)
    rec = Recorder()
    avg = torch.zeros_like(W) if cfg.record.average else None
    n_avg = 0
    noise_probe = cfg.record.noise and plan.sampler.batch_size > 1
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
        loss_draws, update_draws = plan.step_draws.next()
        loss, grad = problem.loss_and_grad(W, x, y, loss_draws)
        lr = plan.optimizer.learning_rate(t)
        ok = torch.isfinite(loss)
        if recording:
            dead = ~alive
            rec.add("loss", t, loss, dead)
            rec.add("grad_norm", t, torch.linalg.vector_norm(grad, dim=1), dead)
            rec.add("lr", t, lr.expand(K) if lr.dim() == 0 else lr, dead)
            if noise_probe:
                _record_noise(plan, rec, t, W, x, y, lr, dead)
        W_new, state_new = rule.update(grad, state, W, lr, update_draws.get("inject"),
                                       quantize=update_draws.get("quantize"))  # fmt: skip
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
    return Loop(W, avg, alive, diverged_at, rec, seconds)
