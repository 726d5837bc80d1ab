"""Strict-saddle escape: GD on the stable manifold never escapes; SGD escape time vs MC."""

from __future__ import annotations

import math

import numpy as np

from sgdlab.theory import (
    gd_saddle_escape_steps,
    saddle_unstable_second_moment,
    sgd_saddle_escape_steps,
)

Z_SE = 4.0


def test_gd_never_leaves_the_stable_manifold_and_escapes_on_schedule_otherwise():
    """F(x, y) = ½(x² − γy²): from (1, 0) GD converges to the saddle; from (1, δ) it escapes."""
    eta, gamma, r = 0.1, 0.5, 1.0
    w = np.array([1.0, 0.0])
    for _ in range(5000):
        w = w - eta * np.array([w[0], -gamma * w[1]])
    assert w[1] == 0.0 and abs(w[0]) < 1e-200
    assert math.isinf(gd_saddle_escape_steps(0.0, r, eta, gamma))
    for delta in (1e-3, 1e-8, -1e-12):
        w, t = np.array([1.0, delta]), 0
        while abs(w[1]) < r:
            w = w - eta * np.array([w[0], -gamma * w[1]])
            t += 1
        assert t == gd_saddle_escape_steps(delta, r, eta, gamma)


def test_unstable_second_moment_matches_simulation():
    eta, gamma, c, b, K = 0.05, 0.8, 2.0, 4, 20000
    rng = np.random.default_rng(0)
    x = np.full(K, 0.01)
    for _ in range(60):
        x = (1 + eta * gamma) * x - eta * np.sqrt(c / b) * rng.standard_normal(K)
    expected = saddle_unstable_second_moment(60, eta, gamma, c, b, x0=0.01)
    assert abs(np.mean(x**2) - expected) < Z_SE * np.std(x**2) / np.sqrt(K)


def test_sgd_escape_time_from_the_saddle_matches_simulation():
    eta, gamma, c, b, r, K = 0.02, 1.0, 4.0, 4, 10.0, 10000
    rng = np.random.default_rng(1)
    x = np.zeros(K)
    tau = np.zeros(K)
    alive = np.ones(K, bool)
    step = 0
    while alive.any():
        step += 1
        x = (1 + eta * gamma) * x - eta * np.sqrt(c / b) * rng.standard_normal(K)
        new = alive & (np.abs(x) >= r)
        tau[new] = step
        alive &= ~new
    expected = sgd_saddle_escape_steps(r, eta, gamma, c, b)
    assert abs(tau.mean() - expected) < Z_SE * tau.std() / np.sqrt(K)
    # logarithmic in the noise: 100× less variance costs only log(10)/log(1+ηγ) more steps
    slower = sgd_saddle_escape_steps(r, eta, gamma, c / 100, b)
    assert math.isclose(slower - expected, np.log(10) / np.log1p(eta * gamma))
