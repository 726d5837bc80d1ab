"""The 1-D SGD chain on a grid: exact laws against closed forms, Monte Carlo and the SDE limit.

Covers: ``sgdlab.theory.discrete_chain``.

Statistical tolerances: Z_SE = 4 standard errors of the Monte Carlo estimate (stated per
test), fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from sgdlab.errors import ConfigError
from sgdlab.theory import mean_first_passage_time, sgd_chain_1d

Z_SE = 4.0


def _quadratic(kappa: float, a: float = 0.0):
    return lambda x: kappa * (np.asarray(x) - a)


def test_quadratic_stationary_law_is_the_finite_eta_gaussian():
    """On ½κ(w − a)² the chain is AR(1): its stationary law is N(a, 2T/(κ(2 − ηκ)))."""
    kappa, a, eta, T = 2.0, 0.3, 0.35, 0.4
    chain = sgd_chain_1d(_quadratic(kappa, a), eta, T, -5.0, 5.0)
    law = chain.stationary()
    var = 2 * T / (kappa * (2 - eta * kappa))
    assert law.total == pytest.approx(1.0, abs=1e-12)
    assert law.mean == pytest.approx(a, abs=1e-10)
    assert law.var == pytest.approx(var, rel=1e-10)
    assert var / (T / kappa) == pytest.approx(2 / (2 - eta * kappa))  # not Gibbs's T/κ
    edges = np.linspace(-2, 2.5, 19)
    exact = np.diff(norm.cdf(edges, a, math.sqrt(var)))
    np.testing.assert_allclose(law.bin_masses(edges), exact, rtol=0, atol=1e-11)
    y = np.array([-1.0, 0.3, 1.7])
    np.testing.assert_allclose(law.density(y), norm.pdf(y, a, math.sqrt(var)), rtol=1e-9)


def test_evolved_law_is_the_ar1_transient():
    kappa, eta, T, x0 = 1.5, 0.2, 0.1, 2.0
    chain = sgd_chain_1d(_quadratic(kappa), eta, T, -4.0, 5.0)
    r = 1 - eta * kappa
    s2 = 2 * eta * T
    for t, law in zip((1, 3, 10), chain.evolve(x0, [1, 3, 10]), strict=True):
        mean = r**t * x0
        var = s2 * (1 - r ** (2 * t)) / (1 - r * r)
        assert law.mean == pytest.approx(mean, abs=1e-11)
        assert law.var == pytest.approx(var, rel=1e-9)
        edges = np.array([-1.0, 0.0, 0.5, 1.0, 3.0])
        np.testing.assert_allclose(
            law.bin_masses(edges), np.diff(norm.cdf(edges, mean, math.sqrt(var))), atol=1e-10
        )
    # from a density (the law after 1 step), 2 more steps = the law after 3 steps from x0
    one, three = chain.evolve(x0, [1, 3])
    again = chain.evolve(one.values, [2])[0]
    np.testing.assert_allclose(again.values, three.values, rtol=1e-9, atol=1e-12)


def _simulate_exit(grad, eta, T, x0, a, b, K, seed, every=1, t_max=100_000):
    """Monte Carlo exit times of the chain from (a, b), observed every ``every`` steps."""
    rng = np.random.default_rng(seed)
    x = np.full(K, float(x0))
    times = np.zeros(K)
    alive = np.ones(K, bool)
    s = math.sqrt(2 * eta * T)
    for t in range(1, t_max + 1):
        x[alive] = x[alive] - eta * grad(x[alive]) + s * rng.standard_normal(int(alive.sum()))
        if t % every == 0:
            out = alive & ((x <= a) | (x >= b))
            times[out] = t
            alive &= ~out
        if not alive.any() or not np.isfinite(x[alive]).any():
            break
    return times


def test_first_passage_matches_monte_carlo_with_and_without_a_recording_cadence():
    """A double-well escape (U = (x² − 1)² + 0.25x) from the right minimum to x ≤ −0.5:
    E N, P(N ≤ t) and E min(N, H) against 20 000 simulated chains (tolerance Z_SE·SE).
    (At η = 0.1 the map overshoots from the far walls, and a chain thrown past ±2.5 diverges;
    between records every 4 steps that happens with probability ≈ 4e-8 — the mass the grid
    drops, ``unobserved_leak`` — far below the Monte Carlo error.)"""

    def grad(x):
        return 4 * x * (x * x - 1) + 0.25

    eta, T, x0, exit_at, K = 0.1, 0.3, 0.967, -0.5, 20_000
    chain = sgd_chain_1d(grad, eta, T, -3.5, 3.5, breaks=[exit_at])
    for every, seed in ((1, 0), (4, 1)):
        fp = chain.first_passage(x0, exit_below=exit_at, every=every)
        n = _simulate_exit(grad, eta, T, x0, exit_at, np.inf, K, seed, every)
        assert fp.unobserved_leak < 1e-6 and (every > 1 or fp.unobserved_leak == 0)
        assert abs(n.mean() - fp.mean) < Z_SE * n.std() / math.sqrt(K)
        for t in (20, 100, 300):
            p = fp.escape_probability(t)
            assert abs((n <= t).mean() - p) < Z_SE * math.sqrt(p * (1 - p) / K)
        H = 150
        c = np.minimum(n, H)
        assert abs(c.mean() - fp.restricted_mean(H)) < Z_SE * c.std() / math.sqrt(K)
        assert (n % every == 0).all()
    # observed every 4 steps the passage is later: N_4 ≥ N
    assert chain.first_passage(x0, exit_below=exit_at, every=4).mean > chain.first_passage(
        x0, exit_below=exit_at).mean  # fmt: skip


def test_two_sided_exit_of_the_linearised_saddle_matches_monte_carlo():
    gamma, eta, T, r, K = 1.0, 0.1, 0.005, 0.5, 20_000
    chain = sgd_chain_1d(lambda y: -gamma * np.asarray(y), eta, T, -r, r)
    fp = chain.first_passage(0.0, exit_below=-r, exit_above=r)
    n = _simulate_exit(lambda y: -gamma * y, eta, T, 0.0, -r, r, K, 2)
    assert abs(n.mean() - fp.mean) < Z_SE * n.std() / math.sqrt(K)
    assert fp.open_leak == 0.0


def test_mean_exit_time_tends_to_the_sde_as_eta_vanishes():
    """η·E N → the SDE's mean first-passage time (quadrature). The discrete chain overshoots
    the absorbing point (an O(√η) correction, Siegmund 1979) and drifts with an O(η) error in
    the bulk; here the total falls about threefold per halving of η."""

    def U(x):
        return (x * x - 1) ** 2 + 0.25 * x

    def grad(x):
        return 4 * x * (x * x - 1) + 0.25

    T, x0, target = 0.3, 0.967, -1.03
    sde = mean_first_passage_time(U, x0, target, T, reflect=3.0, n_grid=40001)
    errs = []
    for eta in (0.02, 0.01, 0.005):
        chain = sgd_chain_1d(grad, eta, T, -2.5, 2.5, breaks=[target])
        errs.append(abs(eta * chain.first_passage(x0, exit_below=target).mean / sde - 1))
    assert errs[-1] < 0.005
    assert errs[0] / errs[1] > 2 ** 0.5 and errs[1] / errs[2] > 2 ** 0.5  # at least √η


def test_grid_refinement_and_kink():
    """Spectral accuracy (panels 2s vs s); a kink of U' at a break is integrated exactly."""

    def grad(x):
        x = np.asarray(x)
        return np.where(x < 0, 16 * (x + 0.25), 1.0 * (x - 1.0))

    chain = sgd_chain_1d(grad, 0.05, 0.3, -2.0, 6.0, breaks=[0.0])
    p = chain.stationary().mass(0.0, 6.0)
    fine = chain.refined(0.5).stationary().mass(0.0, 6.0)
    assert abs(p - fine) < 1e-9
    # Monte Carlo (40 000 chains, 1000 steps after a 2000-step burn-in: ≫ the relaxation)
    rng = np.random.default_rng(3)
    x = np.full(40_000, -0.25)
    frac = []
    for t in range(3000):
        x = x - 0.05 * grad(x) + math.sqrt(2 * 0.05 * 0.3) * rng.standard_normal(x.size)
        if t >= 2000 and t % 50 == 0:
            frac.append((x >= 0).mean())
    # records 50 steps apart are nearly independent here; SE from the 20 record means
    assert abs(np.mean(frac) - p) < Z_SE * np.std(frac, ddof=1) / math.sqrt(len(frac)) + 2e-3


def test_bad_input_names_the_argument():
    g = _quadratic(1.0)
    with pytest.raises(ConfigError, match=r"^T: "):
        sgd_chain_1d(g, 0.1, 0.0, -1, 1)
    with pytest.raises(ConfigError, match=r"^eta: "):
        sgd_chain_1d(g, -0.1, 1.0, -1, 1)
    with pytest.raises(ConfigError, match=r"^hi: "):
        sgd_chain_1d(g, 0.1, 1.0, 1, -1)
    with pytest.raises(ConfigError, match=r"^breaks: "):
        sgd_chain_1d(g, 0.1, 1.0, -1, 1, breaks=[2.0])
    with pytest.raises(ConfigError, match="does not cover"):
        sgd_chain_1d(g, 0.1, 1.0, -0.5, 3.0).stationary()  # the law spreads to ±3
    chain = sgd_chain_1d(g, 0.1, 0.05, -3, 3, breaks=[-1.0])
    with pytest.raises(ConfigError, match=r"^exit_below: "):
        chain.first_passage(0.0, exit_below=-0.5)
    with pytest.raises(ConfigError, match=r"^start: "):
        chain.first_passage(-2.0, exit_below=-1.0)
    with pytest.raises(ConfigError, match=r"^T: .*too rare"):
        sgd_chain_1d(g, 0.1, 0.002, -3, 3, breaks=[-1.0]).first_passage(0.0, exit_below=-1.0)
    fp = chain.first_passage(0.0, exit_below=-1.0)
    with pytest.raises(ConfigError, match=r"^horizon: "):
        fp.restricted_mean(0)
