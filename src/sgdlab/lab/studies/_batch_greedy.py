"""The greedy-step protocol of McCandlish et al. (2018) simulated by the engine on the quadratic.

The greedy step η_t = Σλ²u/(Σλ³u + κΣλc/b) (:func:`sgdlab.theory.target_steps.greedy_schedule`)
is a deterministic schedule computed from the exact moments of the run's own problem, one
value per step. No config schedule can express an arbitrary table of steps, so these runs are
built from their config (problem, seed, chains, batch) by the engine's own ``prepare`` with the
schedule replaced by that table, and executed by the engine's loop: the same code path as
any run, but outside the lab's executor and store (they are recomputed on every analysis,
about a second in quick mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sgdlab.engine.loop import execute
from sgdlab.engine.plan import prepare
from sgdlab.engine.result import RunResult
from sgdlab.lab.studies._batch_common import sweep_config
from sgdlab.optim import Optimizer
from sgdlab.optim.schedule_base import Schedule, Tail
from sgdlab.theory.target_steps import greedy_schedule, greedy_steps_to_target


@dataclass(frozen=True)
class Tabulated(Schedule):
    """s(t) = ``values[t]`` (the last value after the table ends); lr0 multiplies it."""

    name: ClassVar[str] = "tabulated"
    values: tuple[float, ...]

    def _factor(self, xp: Any, t: Any) -> Any:
        idx = np.minimum(np.asarray(t, dtype=np.int64), len(self.values) - 1)
        return xp.asarray(np.asarray(self.values)[idx])

    def tail(self) -> Tail:
        return Tail(eventually_constant=self.values[-1])

    def formula(self) -> str:
        return f"table of {len(self.values)} steps"


def run_schedule(config: dict, etas: np.ndarray) -> RunResult:
    """Run ``config`` (its ``optimizer.lr`` must be 1) with η_t = ``etas[t]``."""
    plan = prepare(config)
    opt = plan.optimizer
    plan.optimizer = Optimizer(opt.rule, opt.lr0, Tabulated(tuple(float(e) for e in etas)))
    loop = execute(plan)
    return RunResult(
        run_id="", config=plan.config.canonical(), config_hash=plan.config.hash(),
        metrics=loop.recorder.result(), final_params=loop.W.detach().cpu(),
        diverged_at=loop.diverged_at.cpu().numpy(), seed_entropy=str(plan.streams.entropy),
        wall_seconds=loop.seconds,
    )  # fmt: skip


@dataclass
class GreedyRun:
    """One batch size of the greedy protocol: the run and its exact steps to the target."""

    b: int
    run: RunResult
    exact: float


def greedy_runs(base: dict, bs: list[int], moments: tuple[np.ndarray, np.ndarray, np.ndarray],
                target: float, chains: int) -> list[GreedyRun]:  # fmt: skip
    """For each b: the exact greedy schedule of the problem with ``moments`` = (λ, c, e₀), run
    for 2 × its exact steps to the target (so that resampled chain means reach it too), the
    objective recorded about 80 times."""
    lam, c, e0 = moments
    out = []
    for b in bs:
        horizon, s = 1 << 10, float("nan")
        while not np.isfinite(s) and horizon <= 1 << 16:
            s = greedy_steps_to_target(lam, c, b, e0, target, np.arange(horizon + 1))
            horizon *= 4
        steps = math.ceil(2 * s)
        every = max(1, steps // 80)
        etas, _ = greedy_schedule(lam, c, b, e0, steps)
        cfg = {**sweep_config(base, b, [0], chains, steps, every),
               "optimizer": {"name": "sgd", "lr": 1.0}}  # η_t from the table (lr0 = 1)
        rec = np.unique(np.r_[np.arange(0, steps + 1, every), steps])
        out.append(GreedyRun(b, run_schedule(cfg, etas),
                             greedy_steps_to_target(lam, c, b, e0, target, rec)))  # fmt: skip
    return out
