"""The batch-size dial's theory: exact steps to a target on the noisy quadratic (constant and
greedy steps), first passages, noise scales along a path, the McCandlish fit and the
divergence batch size — against the recursion, closed forms and simulation."""

from __future__ import annotations

import numpy as np
import pytest

from sgdlab.theory.batch_size import (
    divergence_batch_size,
    fit_critical_batch,
    steps_to_target,
    tradeoff_residual,
)
from sgdlab.theory.rates import expected_suboptimality_quadratic
from sgdlab.theory.target_steps import (
    constant_step_suboptimality,
    first_passage,
    greedy_schedule,
    greedy_steps_to_target,
    path_noise_scales,
    tuned_steps_to_target,
)

LAM = np.array([1.0, 0.3, 0.05])
C = np.array([1.0, 2.0, 0.5])
E0 = np.array([2.0, -1.0, 3.0])
#: statistical tests: 4 standard errors (two-sided false-alarm rate 6e-5 per comparison)
Z_SE = 4.0


def _simulate(etas, b, K, seed):
    """K chains of SGD on the diagonal quadratic with Gaussian noise: F(w_t) [T+1, K]."""
    rng = np.random.default_rng(seed)
    E = np.tile(E0, (K, 1))
    out = [0.5 * (E**2) @ LAM]
    for eta in etas:
        E = E - eta * (LAM * E + np.sqrt(C / b) * rng.standard_normal(E.shape))
        out.append(0.5 * (E**2) @ LAM)
    return np.array(out)


@pytest.mark.parametrize("eta", [0.05, 0.5, 1.9, 2.5])
@pytest.mark.parametrize("n", [None, 40])
def test_constant_step_closed_form_equals_the_recursion(eta, n):
    """The closed form against the step-by-step recursion, to float64 rounding (relative
    1e-12: a few hundred operations of relative error 1e-16), stable and unstable steps,
    with and without replacement."""
    T = 300
    rec = expected_suboptimality_quadratic(LAM, C, 4, E0, np.full(T, eta), n=n)
    closed = constant_step_suboptimality(LAM, C, 4, E0, eta, np.arange(T + 1), n=n)
    np.testing.assert_allclose(closed, rec, rtol=1e-12)


def test_constant_step_with_a_flat_direction():
    """λ = 0 (ρ² = 1): the noise accumulates linearly, E e_t² = t η² c/b."""
    lam = np.array([0.0, 1.0])
    t = np.arange(50)
    closed = constant_step_suboptimality(lam, [1.0, 1.0], 2, [1.0, 1.0], 0.1, t)
    rec = expected_suboptimality_quadratic(lam, [1.0, 1.0], 2, [1.0, 1.0], np.full(49, 0.1))
    np.testing.assert_allclose(closed, rec, rtol=1e-12)


def test_greedy_schedule_is_the_recursion_and_each_step_is_optimal():
    etas, curve = greedy_schedule(LAM, C, 8, E0, 60)
    np.testing.assert_allclose(curve, expected_suboptimality_quadratic(LAM, C, 8, E0, etas),
                               rtol=1e-12)  # fmt: skip
    # each η_t minimises E F(w_{t+1}) given the moments at t: nudging it either way is worse
    for t in (0, 5, 30):
        base = expected_suboptimality_quadratic(LAM, C, 8, E0, etas[: t + 1])[-1]
        for delta in (-1e-3, 1e-3):
            nudged = etas[: t + 1].copy()
            nudged[t] *= 1 + delta
            assert expected_suboptimality_quadratic(LAM, C, 8, E0, nudged)[-1] > base


def test_greedy_step_on_an_isotropic_quadratic_is_beta_over_gamma_plus_t():
    """With H = λI and C = σ²I the greedy recursion has a closed form (derivation in
    docs/lab.md, part 3): 1/u_{t+1} = 1/u_t + bλ²/σ², so η_t = 1/(λ(t + 1 + a/u₀)) with
    a = σ²/(bλ²) — the β/(γ + t) schedule — and u_t = a u₀/(a + t u₀)."""
    lam, sigma2, b, u0 = 0.5, 2.0, 4, 3.0
    d = 3
    etas, curve = greedy_schedule(np.full(d, lam), np.full(d, sigma2), b,
                                  np.full(d, np.sqrt(u0)), 40)  # fmt: skip
    a = sigma2 / (b * lam**2)
    t = np.arange(41)
    np.testing.assert_allclose(etas, 1 / (lam * (t[:-1] + 1 + a / u0)), rtol=1e-12)
    np.testing.assert_allclose(curve, 0.5 * lam * d * a * u0 / (a + t * u0), rtol=1e-12)


def test_greedy_schedule_against_simulation():
    """Monte Carlo with the greedy schedule matches the exact curve within Z_SE standard
    errors (SE over independent chains) at several steps."""
    b, T, K = 2, 80, 20000
    etas, curve = greedy_schedule(LAM, C, b, E0, T)
    sim = _simulate(etas, b, K, seed=3)
    for t in (1, 10, 40, 80):
        se = sim[t].std(ddof=1) / np.sqrt(K)
        assert abs(sim[t].mean() - curve[t]) < Z_SE * se


def test_first_passage_interpolates_in_log_and_handles_misses():
    steps = np.array([0, 10, 20, 30])
    values = np.array([[1.0, 0.1, 0.01, 0.001],   # crosses 10^-1.5 half-way in log
                       [1.0, 0.5, 0.4, 0.3],      # never
                       [0.01, 0.1, 0.001, 0.1],   # already below at the start
                       [1.0, np.nan, 0.001, 0.0]])  # a NaN (divergence) before the crossing
    got = first_passage(steps, values, 10**-1.5)
    assert got[0] == pytest.approx(15.0, rel=1e-12)
    assert np.isnan(got[1]) and got[2] == 0.0 and np.isnan(got[3])


def test_tuned_steps_pick_the_fastest_step_and_are_nan_when_none_reaches():
    rec = np.arange(2001)
    etas = [0.05, 0.2, 0.8]
    tuned = tuned_steps_to_target(LAM, C, 16, E0, etas, 0.3, rec)
    assert tuned.steps == np.nanmin(tuned.per_eta) and tuned.eta in etas
    # each per-step value is the first passage of the closed-form curve
    for eta, s in zip(etas, tuned.per_eta, strict=True):
        curve = constant_step_suboptimality(LAM, C, 16, E0, eta, rec)
        assert s == first_passage(rec, curve, 0.3)
    assert np.isnan(tuned_steps_to_target(LAM, C, 1, E0, [0.8], 1e-6, rec).steps)


def test_greedy_steps_to_target_reads_the_greedy_curve():
    rec = np.arange(0, 301, 3)
    _, curve = greedy_schedule(LAM, C, 8, E0, 300)
    assert greedy_steps_to_target(LAM, C, 8, E0, 0.2, rec) == first_passage(rec, curve[rec], 0.2)


def test_path_noise_scales_from_the_moments():
    etas = np.full(30, 0.4)
    bs, bn = path_noise_scales(LAM, C, 4, E0, etas)
    m, v = E0.copy(), np.zeros(3)
    for t in range(31):
        u = m * m + v
        assert bs[t] == pytest.approx(C.sum() / (u @ LAM**2), rel=1e-12)
        assert bn[t] == pytest.approx((LAM @ C) / (u @ LAM**3), rel=1e-12)
        if t < 30:
            m, v = (1 - 0.4 * LAM) * m, (1 - 0.4 * LAM) ** 2 * v + 0.16 * C / 4
    # with H ∝ I the two scales coincide (McCandlish §2.2)
    iso_s, iso_n = path_noise_scales(np.full(3, 0.7), C, 4, E0, etas)
    np.testing.assert_allclose(iso_s, iso_n, rtol=1e-12)


def test_fit_recovers_the_mccandlish_curve_rows_and_edges():
    B = np.array([1.0, 2, 4, 8, 16, 64, 256])
    S = steps_to_target(B, 30.0, 12.0)
    fit = fit_critical_batch(B, S)
    assert fit.s_min == pytest.approx(30.0, rel=1e-8)
    assert fit.b_crit == pytest.approx(12.0, rel=1e-8)
    assert not fit.at_edge
    # on the fitted curve the steps–examples trade-off holds: (S/S_min − 1)(E/E_min − 1) = 1
    np.testing.assert_allclose(tradeoff_residual(S, B * S, fit.s_min, fit.b_crit * fit.s_min),
                               0.0, atol=1e-7)  # fmt: skip
    rng = np.random.default_rng(0)
    noisy = S * np.exp(0.05 * rng.standard_normal((5, B.size)))
    rows = fit_critical_batch(B, np.vstack([noisy, S * np.nan]))
    for r in range(5):
        one = fit_critical_batch(B, noisy[r])
        assert rows.b_crit[r] == pytest.approx(one.b_crit, rel=1e-9)
    assert np.isnan(rows.b_crit[5]) and np.isnan(rows.s_min[5])
    # perfect scaling everywhere (S ∝ 1/b) never bends: B_crit runs to the end of the search
    assert fit_critical_batch(B, 100.0 / B).at_edge


def test_fit_of_noisy_steps_is_unbiased_within_its_spread():
    """Log-normal noise of 5% on S: the fitted B_crit over 400 replicates is centred on the
    truth within Z_SE standard errors of its mean."""
    B = np.array([1.0, 4, 16, 64, 256, 1024])
    rng = np.random.default_rng(1)
    S = steps_to_target(B, 20.0, 50.0) * np.exp(0.05 * rng.standard_normal((400, B.size)))
    bc = np.log(fit_critical_batch(B, S).b_crit)
    assert abs(bc.mean() - np.log(50.0)) < Z_SE * bc.std(ddof=1) / np.sqrt(bc.size)


def test_divergence_batch_size_is_the_stability_edge():
    eta0, b0, lam_max = 0.15, 4, 1.3
    for rule, power in (("linear", 1.0), ("sqrt", 0.5)):
        b_div = divergence_batch_size(eta0, b0, lam_max, rule)
        assert eta0 * (b_div / b0) ** power * lam_max == pytest.approx(2.0, rel=1e-12)
        for b, stable in ((0.99 * b_div, True), (1.01 * b_div, False)):
            rho = abs(1 - eta0 * (b / b0) ** power * lam_max)
            assert (rho < 1) is stable
    assert divergence_batch_size(0.1, 4, 1.0, "none") == np.inf
    with pytest.raises(ValueError):
        divergence_batch_size(0.1, 4, 1.0, "cubic")  # type: ignore[arg-type]
