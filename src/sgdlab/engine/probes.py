"""Probes: what the engine records on its cadence.

Every probe is evaluated at the iterate w_t *before* update t (so step 0 is the initial
point), plus the final iterate w_T at step T:

* ``loss`` — minibatch loss (1/b) Σ f(w_t; ξ_i) of the batch used at step t;
* ``grad_norm`` — ‖g_t‖₂ of that minibatch gradient (before clipping);
* ``lr`` — η_t of each chain;
* ``objective`` — F(w_t) (closed form, or the full-data mean) when affordable;
* ``suboptimality`` — F(w_t) − F* where F* is known;
* ``dist_to_opt`` — ‖w_t − w*‖₂ where w* is known (with the objective probes: when
  ``record.objective`` is off, w* is never computed);
* ``avg_objective`` / ``avg_suboptimality`` — the same for the Polyak–Ruppert average
  w̄_t = mean of w_s for average_start ≤ s ≤ t, when ``record.average`` is on;
* ``noise_*`` — per-chain gradient-noise statistics of the minibatch when ``record.noise``
  is on (:mod:`sgdlab.engine.noise_probe`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sgdlab.engine.recorder import Recorder
from sgdlab.problems.base import Problem


class ObjectiveProbe:
    """Full-objective probes (objective, suboptimality, distance) for one problem."""

    def __init__(self, problem: Problem, enabled: bool) -> None:
        self.problem = problem
        self.enabled = enabled
        # off: nothing that needs the problem's solution (a Newton solve for some problems)
        self.f_star = problem.f_star if enabled else None
        self.w_star = problem.w_star if enabled else None

    def record(
        self, rec: Recorder, step: int, W: Tensor, dead: Tensor, prefix: str = ""
    ) -> None:
        with torch.no_grad():
            if self.enabled:
                f = self.problem.objective(W)
                rec.add(prefix + "objective", step, f, dead)
                if self.f_star is not None:
                    rec.add(prefix + "suboptimality", step, f - self.f_star, dead)
            if self.w_star is not None and not prefix:
                dist = torch.linalg.vector_norm(W - self.w_star.to(W), dim=1)
                rec.add("dist_to_opt", step, dist, dead)
