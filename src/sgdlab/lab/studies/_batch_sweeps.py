"""The b × η sweeps shared by ``critical-batch``, ``lr-scaling`` and ``throughput``.

One run per (problem, b): SGD with batches drawn with replacement (so the minibatch noise is
Σ/b at every b), one chain group per lattice step η_j = 2^{j/2}
(:mod:`sgdlab.lab.studies._batch_common`). Each run's steps are the union of

* the **tuning window** of b (steps around the tuned one, so that the minimum is inside), and
* for lr-scaling, the steps of the tuning window at b₀ **scaled** to b = k·b₀, k = 2^m, by the
  linear rule (j + 2m), the square-root rule (j + m) and no scaling (j),

so both studies read the same stored runs. Problems (every reference computed on the run's
own problem):

* ``quad`` — a finite noisy quadratic (d = 8, λ log-spaced in [0.01, 1], N = 4096 centred
  isotropic noise draws, σ = 1), deterministic start e₀ = 10/√d·(1, …, 1), float64; target
  F − F* ≤ F₀/100. Its windows and run lengths come from the exact recursion
  (:mod:`sgdlab.theory.target_steps`) of the population version (C = I), and the
  lr-scaling rules start from the exact tuned step at b₀.
* ``logreg`` — softmax logistic regression on a synthetic ill-conditioned mixture (N = 2000,
  20 features scaled by 1/(j+1), 3 classes, l2 = 0.01, as in ``efficiency``); target
  F − F* ≤ 0.03.
* ``mlp`` — the digits MLP (64–32–10, ReLU; N = 1797), float32; target F ≤ 0.2 (F* is not
  known; the training loss).

The logreg and MLP windows were placed from a pilot sweep so that every tuned step lies inside
its window (the analysis flags a tuned step at a window's edge).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.studies._batch_common import eta, sweep_config
from sgdlab.lab.studies._common import build
from sgdlab.theory.target_steps import constant_step_suboptimality, first_passage

QUAD = {"name": "quadratic", "dim": 8, "mu": 0.01, "L": 1.0, "noise": "isotropic",
        "noise_std": 1.0, "init_scale": 10.0, "n": 4096}
LOGREG = {"name": "logistic_regression", "dataset": "synthetic", "n_samples": 2000,
          "n_features": 20, "n_classes": 3, "separation": 3.0, "l2": 0.01,
          "feature_decay": 1.0, "standardize": False}
MLP = {"name": "mlp", "dataset": "digits", "widths": [32]}


@dataclass(frozen=True)
class SweepSpec:
    """A problem's sweep: its problem section, metric and target, seed, dtype, the batch sizes
    of each mode, the chains per step for b ≤ 16, 16 < b ≤ 64 and b > 64 (fewer where the noise
    is small; twice as many in full mode), b₀ of
    the lr-scaling rules (``None``: no scaled steps), the records per run, and per batch size
    the tuning window and run length ``(j_lo, j_hi, steps)`` (empty: from the exact theory)."""

    key: str
    problem: dict
    metric: str
    target: float
    seed: int
    dtype: str
    quick_bs: tuple[int, ...]
    full_bs: tuple[int, ...]
    chains_per_lr: tuple[int, int, int]
    b0: int | None = None
    records: int = 40
    windows: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    off_init: bool = False

    def batch_sizes(self, quick: bool) -> list[int]:
        return list(self.quick_bs if quick else self.full_bs)

    def base(self) -> dict:
        cfg = {"problem": self.problem, "seed": self.seed, "dtype": self.dtype}
        if self.off_init:
            cfg["streams"] = {"off": ["init"]}
        return cfg


#: quick mode: powers of 4; full mode: every power of 2 up to 2048
QUICK_B = (1, 4, 16, 64, 256, 1024)
FULL_B = tuple(2**i for i in range(12))


def quad_spec() -> SweepSpec:
    return SweepSpec("quad", QUAD, "suboptimality", quad_target(), 51, "float64", QUICK_B,
                     FULL_B, (192, 96, 48), b0=4, off_init=True)  # fmt: skip


#: (j_lo, j_hi, steps) per batch size, from a pilot sweep (target 0.03)
LOGREG_SPEC = SweepSpec("logreg", LOGREG, "suboptimality", 0.03, 52, "float32", QUICK_B,
                        FULL_B, (48, 24, 8), b0=4, windows={
    1: (-9, -5, 2000), 2: (-8, -4, 1000), 4: (-5, -1, 450), 8: (-4, 0, 250), 16: (-2, 2, 130),
    32: (-1, 3, 80), 64: (0, 4, 60), 128: (1, 5, 45), 256: (2, 5, 40), 512: (2, 5, 35),
    1024: (2, 5, 60), 2048: (2, 5, 60)})  # fmt: skip
#: (j_lo, j_hi, steps) per batch size, from a pilot sweep (target 0.2); F over the 1797
#: samples is the cost of a record, so 20 records per run
MLP_SPEC = SweepSpec("mlp", MLP, "objective", 0.2, 53, "float32", QUICK_B[1:], FULL_B[1:],
                     (8, 8, 4), records=20, off_init=True, windows={
    1: (-11, -7, 1300), 2: (-10, -6, 700), 4: (-8, -4, 330), 8: (-6, -2, 180),
    16: (-5, -1, 110), 32: (-3, 1, 70), 64: (-2, 2, 50), 128: (-1, 3, 40), 256: (-1, 3, 35),
    512: (0, 3, 30), 1024: (0, 3, 30), 2048: (0, 3, 30)})  # fmt: skip


def quad_target() -> float:
    """F₀/100 with F₀ = ½ Σ λ e₀² of the deterministic start (w* = 0, e₀ = 10/√d)."""
    lam, _, e0 = quad_population()
    return 0.01 * 0.5 * float(np.sum(lam * e0**2))


def quad_population() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(λ, c, e₀) of the population version of ``QUAD`` (C = σ²I)."""
    d = QUAD["dim"]
    lam = np.logspace(math.log10(QUAD["L"]), math.log10(QUAD["mu"]), d)
    return lam, np.full(d, QUAD["noise_std"] ** 2), np.full(d, QUAD["init_scale"] / math.sqrt(d))


@functools.lru_cache(maxsize=256)
def quad_exact_hits(b: int, js: tuple[int, ...]) -> np.ndarray:
    """Exact steps to the target of each lattice step at batch size b (population C = σ²I,
    every step recorded), searched until every direction has relaxed to 10⁻¹² of its start
    (at most 2¹⁵ steps; 2¹² for an unstable step)."""
    lam, c, e0 = quad_population()
    target = quad_target()
    out = []
    for j in js:
        rho = float(np.max(np.abs(1.0 - eta(j) * lam)))
        horizon = 1 << 12 if rho >= 1 else min(1 << 15, math.ceil(-27.7 / (2 * math.log(rho))))
        rec = np.arange(horizon + 1)
        curve = constant_step_suboptimality(lam, c, b, e0, eta(j), rec)
        out.append(float(first_passage(rec, curve, target)))
    return np.array(out)


def quad_tuned_index(b: int) -> int:
    """The lattice step tuned exactly at batch size b (population version)."""
    js = tuple(range(-14, 4))
    return js[int(np.nanargmin(quad_exact_hits(b, js)))]


def plan(spec: SweepSpec, b: int) -> tuple[list[int], int, int]:
    """``(lattice steps, run length, record every)`` of the run at batch size b."""
    m = round(math.log2(b / spec.b0)) if spec.b0 is not None and b >= spec.b0 else None
    if spec.key == "quad":
        j_star = quad_tuned_index(b)
        window = set(range(j_star - 2, j_star + 2))
        start = {quad_tuned_index(spec.b0)} if spec.b0 is not None else set()
    else:
        lo, hi, _ = spec.windows[b]
        window = set(range(lo, hi + 1))
        lo0, hi0, _ = spec.windows[spec.b0] if spec.b0 is not None else (0, -1, 0)
        start = set(range(lo0, hi0 + 1))
    js = set(window)
    scaled: set[int] = set()
    if m is not None:
        scaled = {j + 2 * m for j in start} | {j + m for j in start}
        js |= scaled | start
    js_sorted = sorted(js)
    if spec.key == "quad":  # long enough for the tuned step's neighbours and the scaled rules
        needed = tuple(sorted({j_star - 1, j_star} | scaled))
        steps = math.ceil(1.3 * np.nanmax(quad_exact_hits(b, needed)))
    else:
        steps = spec.windows[b][2]
    return js_sorted, steps, max(1, steps // spec.records)


def sweep_grid(spec: SweepSpec, quick: bool) -> dict[str, dict]:
    """``{f"{key}/b{b}": config}`` of a problem's sweep."""
    out = {}
    for b in spec.batch_sizes(quick):
        js, steps, every = plan(spec, b)
        chains = spec.chains_per_lr[0 if b <= 16 else 1 if b <= 64 else 2] * (1 if quick else 2)
        out[f"{spec.key}/b{b}"] = sweep_config(spec.base(), b, js, chains, steps, every)
    return out


def quad_moments(run: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(λ, c = diag(QᵀCQ), e₀ = Qᵀ(w₀ − w*)) of a quadratic run's own problem (float64)."""
    prob = build(run)
    Q = prob.Q.numpy()
    lam = prob.eigenvalues.numpy()
    c = np.einsum("ij,ik,kj->j", Q, prob.C.numpy(), Q)
    e0 = Q.T @ (prob.init_params(None).numpy() - prob.w_star.numpy())
    return lam, c, e0


SPECS = (quad_spec(), LOGREG_SPEC, MLP_SPEC)
