"""Exact second moments of SGD on Gaussian linear regression: recursion vs Monte Carlo and the
engine, stationary solve, Lyapunov and Gibbs limits, refusals.

Covers: ``sgdlab.theory.linear_regression``. Statistical tolerance: Z_SE = 4 standard errors
of the Monte Carlo mean over independent chains, fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sgdlab
from sgdlab.errors import ConfigError
from sgdlab.theory.linear_regression import (
    linreg_gibbs,
    linreg_lyapunov,
    linreg_sgd_second_moments,
    linreg_sgd_stationary,
    shape_ratio,
)

Z_SE = 4.0
LAM = np.array([1.0, 0.5, 0.25, 0.1])


def test_recursion_matches_an_independent_monte_carlo():
    """numpy SGD with Gaussian x ~ N(0, diag λ), b = 2, from δ₀ = (1, −1, 0.5, 0)."""
    eta, b, s2, K, T = 0.1, 2, 0.5, 40_000, 30
    d0 = np.array([1.0, -1.0, 0.5, 0.0])
    rng = np.random.default_rng(0)
    delta = np.tile(d0, (K, 1))
    for _ in range(T):
        x = rng.standard_normal((K, b, 4)) * np.sqrt(LAM)
        eps = math.sqrt(s2) * rng.standard_normal((K, b))
        r = np.einsum("kbi,ki->kb", x, delta) - eps
        delta = delta - eta * np.einsum("kb,kbi->ki", r, x) / b
    p = linreg_sgd_second_moments(LAM, s2, eta, b, d0**2, T)[-1]
    for i in range(4):
        v = delta[:, i] ** 2
        assert abs(v.mean() - p[i]) < Z_SE * v.std() / math.sqrt(K)


def test_engine_run_matches_the_recursion():
    cfg = {"problem": {"name": "linear_regression", "eigenvalues": LAM.tolist(), "noise_std": 1.0,
                       "w_star": 0.5, "init_scale": 0.0},
           "optimizer": {"name": "sgd", "lr": 0.05}, "batch": {"size": 1, "sampling": "stream"},
           "chains": 2000, "steps": 200, "seed": 3, "record": {"every": 200},
           "dtype": "float64"}  # fmt: skip
    res = sgdlab.run(cfg)
    d2 = res.metric("dist_to_opt")[1][:, -1] ** 2
    exact = linreg_sgd_second_moments(LAM, 1.0, 0.05, 1, np.zeros(4), 200)[-1].sum()
    assert abs(d2.mean() - exact) < Z_SE * d2.std() / math.sqrt(d2.size)


def test_stationary_solve_lyapunov_and_gibbs():
    s2, b = 1.0, 1
    for eta in (0.2, 0.05):
        stat = linreg_sgd_stationary(LAM, s2, eta, b)
        it = linreg_sgd_second_moments(LAM, s2, eta, b, np.zeros(4), 20_000)[-1]
        np.testing.assert_allclose(stat, it, rtol=1e-10)
    # η → 0: the exact law tends to the Lyapunov one, P = ησ²/(2b)·I (error O(η))
    errs = [np.max(np.abs(linreg_sgd_stationary(LAM, s2, e, b) / linreg_lyapunov(LAM, s2, e, b)
                          - 1)) for e in (0.02, 0.01, 0.005)]  # fmt: skip
    assert errs[0] / errs[1] == pytest.approx(2, rel=0.1)
    assert errs[1] / errs[2] == pytest.approx(2, rel=0.05)
    assert shape_ratio(linreg_lyapunov(LAM, s2, 0.01), LAM) == pytest.approx(4 / LAM.sum())
    assert shape_ratio(linreg_gibbs(LAM, s2, 0.01), LAM) == pytest.approx(np.mean(1 / LAM))


def test_refusals_name_the_argument():
    with pytest.raises(ConfigError, match=r"^eta: .*too large"):
        linreg_sgd_stationary(LAM, 1.0, 3.0)
    with pytest.raises(ConfigError, match=r"^eigenvalues: "):
        linreg_sgd_stationary([1.0, -1.0], 1.0, 0.1)
    with pytest.raises(ConfigError, match=r"^b: "):
        linreg_gibbs(LAM, 1.0, 0.1, b=0)
