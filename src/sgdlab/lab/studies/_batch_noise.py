"""Noise scales along a training path, measured by the instrument (for ``critical-batch``).

McCandlish et al. (2018, §2.2–2.3 and appendix D) predict B_crit from the noise scales
B_simple = tr Σ / |G|² and B_noise = tr(HΣ) / (GᵀHG): if each step of the greedy protocol
gains ΔL_max/(1 + B_noise/B), the steps to a target are S(B) = S_min + (1/B) Σ_t B_noise(t)
over the S_min steps of the noiseless path, i.e. B_crit = the **average of B_noise over the
noiseless path**. That path is computed here: gradient descent (the full-data gradient, float64)
from the run's start with the step tuned at the largest batch, until the target. At points
along it the instrument measures

* **B_simple** — tr Σ / |G|² from the N per-sample gradients at every step of the path (the
  whole population: exact, no sampling error; the same numbers as
  :func:`sgdlab.measure.gradient_noise` over the whole dataset, which a test checks);
* **B_noise** — tr(HΣ) by the instrument's Hutchinson estimator (:mod:`sgdlab.run_noise`,
  probes drawn from the study's ``probe``-stream seed) and GᵀHG by one Hessian-vector product,
  at ≤ MAX_POINTS points; the probes give each point's standard error.

Reported: the scales at the start, at the target, and their step-weighted average over the
path (the points are equally spaced in steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdlab.problems.base import Problem
from sgdlab.run_noise import dataset_gradients, noise_terms, simple_scale

#: Hutchinson probes of tr(HΣ) per path point, and the most points measured on a path
PROBES, MAX_POINTS = 8, 5


@dataclass
class PathScales:
    """Noise scales along the noiseless path.

    Attributes:
        steps: ``[n + 1]`` the path steps 0..n, n = ⌈S_min⌉ (the first step at or below the
            target).
        s_min: the noiseless path's steps to the target (interpolated).
        b_simple: ``[n + 1]`` exact B_simple at every step.
        noise_steps: the steps where B_noise was measured (≤ MAX_POINTS, equally spaced, the
            start and the target included).
        b_noise: B_noise at those steps (mean over the probes; NaN where GᵀHG ≤ 0).
        b_noise_se: its standard error over the probes.
    """

    steps: np.ndarray
    s_min: float
    b_simple: np.ndarray
    noise_steps: np.ndarray
    b_noise: np.ndarray
    b_noise_se: np.ndarray

    def summary(self, which: str) -> dict[str, float]:
        """``{start, target, path, undefined}`` of B_simple or B_noise. ``path`` is the
        step-weighted average over the path's steps before the target (B_simple: every step;
        B_noise: its equally spaced points), over the points where the scale is defined
        (``undefined``: points with GᵀHG ≤ 0)."""
        v = self.b_simple if which == "b_simple" else self.b_noise
        inner = v[:-1]
        return {"start": float(v[0]), "target": float(v[-1]),
                "path": float(np.nanmean(inner)) if np.isfinite(inner).any() else float("nan"),
                "undefined": int(np.isnan(inner).sum())}  # fmt: skip

    def path_noise_se(self) -> float:
        """SE of the path average of B_noise (independent probes at every point)."""
        se = self.b_noise_se[:-1]
        se = se[np.isfinite(se)]
        return float(np.sqrt(np.sum(se**2)) / se.size) if se.size else float("nan")


def gd_path(problem: Problem, w0: torch.Tensor, eta: float, target: float, metric: str,
            max_steps: int = 5000) -> tuple[list[torch.Tensor], float]:  # fmt: skip
    """Full-batch gradient descent from ``w0`` with step η until ``metric`` (objective or
    suboptimality) is ≤ ``target``: the iterates and the (interpolated) steps to the target."""
    offset = problem.f_star if metric == "suboptimality" else 0.0
    w = w0.double().reshape(1, -1)
    ws, values = [w[0].clone()], [float(problem.objective(w)[0]) - offset]
    while values[-1] > target and len(ws) <= max_steps:
        w = w - eta * problem.grad_F(w)
        ws.append(w[0].clone())
        values.append(float(problem.objective(w)[0]) - offset)
    if values[-1] > target:
        return ws, float("nan")
    if len(ws) == 1:
        return ws, 0.0
    a, z = np.log(values[-2]), np.log(max(values[-1], 1e-300))
    return ws, len(ws) - 2 + (a - np.log(target)) / (a - z)


def path_scales(problem: Problem, w0: torch.Tensor, eta: float, target: float, metric: str,
                seed: int) -> PathScales:  # fmt: skip
    """B_simple (every step) and B_noise (≤ MAX_POINTS points) along the noiseless path."""
    ws, s_min = gd_path(problem, w0, eta, target, metric)
    grads = [dataset_gradients(problem, w) for w in ws]  # [N, d] each
    b_simple = np.array([simple_scale(D) for D in grads])
    idx = np.unique(np.linspace(0, len(ws) - 1, min(MAX_POINTS, len(ws))).round().astype(int))
    gen = torch.Generator().manual_seed(seed)
    bn, se = [], []
    for i in idx:
        probes, ghg = noise_terms(problem, ws[i], grads[i], PROBES, gen)
        # B_noise needs GᵀHG > 0 (the local model's improvement is concave in the step);
        # where the Hessian curves down along G (a non-convex loss) it is undefined
        ok = ghg > 0
        bn.append(float(np.mean(probes)) / ghg if ok else np.nan)
        se.append(float(np.std(probes, ddof=1) / np.sqrt(len(probes))) / ghg if ok else np.nan)
    return PathScales(np.arange(len(ws), dtype=float), s_min, b_simple, idx.astype(float),
                      np.array(bn), np.array(se))  # fmt: skip


def ratio_ci(b_crit_boot: np.ndarray, scale: float, scale_se: float,
             seed: int) -> tuple[float, float]:  # fmt: skip
    """95% interval of B_crit / scale: the bootstrap resamples of B_crit over independent
    normal draws of the scale (mean ``scale``, SD ``scale_se``), percentile."""
    rng = np.random.default_rng(seed)
    b = np.asarray(b_crit_boot, float)
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan"), float("nan")
    den = scale + scale_se * rng.standard_normal(b.size)
    lo, hi = np.quantile(b / den, [0.025, 0.975])
    return float(lo), float(hi)
