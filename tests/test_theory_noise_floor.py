"""Noise floor of constant-step SGD: Lyapunov algebra, closed forms, and Monte Carlo.

Statistical tolerances are Z_SE standard errors of the simulated estimate (fixed seeds).

Covers: ``sgdlab.theory.noise_floor``, the finite-population factor (common).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdlab.theory import (
    bcn_constants_quadratic,
    bcn_fixed_step_bound,
    bcn_fixed_step_limit,
    momentum_stationary_covariance,
    momentum_stationary_excess_loss,
    momentum_stationary_excess_loss_eig,
    sgd_stationary_covariance,
    sgd_stationary_excess_loss,
    sgd_stationary_excess_loss_eig,
    sgd_stationary_variance_eig,
    sgd_transient_excess_loss,
    sgd_transient_excess_loss_eig,
    small_eta_noise_floor,
    stability_threshold,
)

Z_SE = 4.0


@pytest.fixture
def one_torch_thread():
    """Small tensors: one intra-op thread is much faster than several on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _spd(rng: np.random.Generator, eigs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, r = np.linalg.qr(rng.standard_normal((eigs.size, eigs.size)))
    Q = q * np.sign(np.diag(r))
    return (Q * eigs) @ Q.T, Q


def _problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A rotated Hessian and a noise covariance that does not commute with it."""
    rng = np.random.default_rng(seed)
    A, _ = _spd(rng, np.array([0.5, 1.0, 2.0]))
    B = rng.standard_normal((3, 3))
    C = B @ B.T + 0.5 * np.eye(3)
    return A, C


def _simulate_sgd(A, C, eta, b, e0, steps, K, seed, momentum=0.0, keep_all=True):
    """K chains of (heavy-ball) SGD on the quadratic; Gaussian minibatch noise N(0, C/b).

    Returns every iterate [steps+1, K, d], or only the last [K, d] when ``keep_all`` is off.
    """
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(C / b)
    E = np.tile(np.asarray(e0, dtype=float), (K, 1))
    V = np.zeros_like(E)
    out = [E.copy()]
    for _ in range(steps):
        g = E @ A.T + rng.standard_normal(E.shape) @ L.T
        V = momentum * V + g
        E = E - eta * V
        if keep_all:
            out.append(E.copy())
    return np.stack(out) if keep_all else E


def _loss(A, E):
    return 0.5 * np.einsum("...i,ij,...j->...", E, A, E)


def test_lyapunov_solution_satisfies_equation():
    A, C = _problem()
    eta, b = 0.3, 4
    P = sgd_stationary_covariance(A, C, eta, b)
    M = np.eye(3) - eta * A
    np.testing.assert_allclose(P, M @ P @ M.T + eta**2 * C / b, rtol=1e-12, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(P) > 0)
    assert sgd_stationary_excess_loss(A, C, eta, b) == pytest.approx(0.5 * np.trace(A @ P))


def test_commuting_closed_form_equals_lyapunov_solver():
    rng = np.random.default_rng(1)
    lam = np.array([0.1, 0.7, 1.5, 3.0])
    c = np.array([2.0, 0.5, 1.0, 0.3])
    A, Q = _spd(rng, lam)
    C = (Q * c) @ Q.T
    for eta, b, n in [(0.05, 1, None), (0.4, 8, None), (0.6, 5, 40)]:
        P = sgd_stationary_covariance(A, C, eta, b, n)
        np.testing.assert_allclose(
            np.diag(Q.T @ P @ Q), sgd_stationary_variance_eig(lam, c, eta, b, n), rtol=1e-10
        )
        assert sgd_stationary_excess_loss_eig(lam, c, eta, b, n) == pytest.approx(
            sgd_stationary_excess_loss(A, C, eta, b, n), rel=1e-10
        )


def test_small_eta_noise_floor_is_the_limit_and_a_lower_bound():
    lam = np.array([0.2, 1.0, 4.0])
    c = np.array([1.0, 3.0, 0.5])
    for eta in [0.4, 0.1, 0.01, 0.001]:
        exact = sgd_stationary_excess_loss_eig(lam, c, eta, b=2)
        approx = small_eta_noise_floor(c.sum(), eta, b=2)
        # Σ c_i/(2 − ηλ_i) lies between Σ c_i/2 and Σ c_i/(2 − ηL)
        assert approx <= exact <= approx / (1 - eta * lam.max() / 2)


def test_stationary_excess_loss_matches_sgd_simulation():
    A, C = _problem()
    eta, b, K = 0.2, 2, 20000
    steps = 400  # (1 − 0.2·0.5)^800 ≈ 1e-37: stationary
    E = _simulate_sgd(A, C, eta, b, np.zeros(3), steps, K, seed=2, keep_all=False)
    f = _loss(A, E)
    assert abs(f.mean() - sgd_stationary_excess_loss(A, C, eta, b)) < Z_SE * f.std() / np.sqrt(K)
    P = sgd_stationary_covariance(A, C, eta, b)
    prods = E[:, :, None] * E[:, None, :]
    se = prods.std(axis=0) / np.sqrt(K)
    assert np.all(np.abs(prods.mean(axis=0) - P) < Z_SE * se)


def test_transient_recursion_equals_closed_form_and_monte_carlo():
    rng = np.random.default_rng(3)
    lam = np.array([0.3, 1.0, 2.5])
    c = np.array([1.0, 2.0, 0.5])
    A, Q = _spd(rng, lam)
    C = (Q * c) @ Q.T
    e0 = np.array([2.0, -1.0, 1.5])
    eta, b, T = 0.15, 3, 60
    rec = sgd_transient_excess_loss(A, C, eta, e0, T, b)
    closed = sgd_transient_excess_loss_eig(lam, c, eta, Q.T @ e0, np.arange(T + 1), b)
    np.testing.assert_allclose(rec, closed, rtol=1e-10)
    K = 20000
    f = _loss(A, _simulate_sgd(A, C, eta, b, e0, T, K, seed=4))  # [T+1, K]
    t = np.array([0, 1, 5, 20, 60])
    se = f[t].std(axis=1) / np.sqrt(K)
    assert np.all(np.abs(f[t].mean(axis=1) - rec[t]) <= Z_SE * se + 1e-12)


def test_transient_closed_form_against_quadratic_problem_without_replacement(one_torch_thread):
    """The finite-population factor and the problem's gradient convention, end to end."""
    from sgdlab.problems.quadratic import Quadratic, QuadraticParams
    from sgdlab.rng import Streams

    N, b, eta, T, K = 40, 8, 0.3, 25, 4000
    prob = Quadratic(
        QuadraticParams(dim=3, mu=0.5, L=2.0, rotate=True, noise_std=1.5, n=N),
        Streams(5),
        torch.float64,
    )
    A, C = prob.A.numpy(), prob.C.numpy()
    e0 = np.array([1.0, -2.0, 0.5])
    expected = sgd_transient_excess_loss(A, C, eta, e0, T, b, n=N)
    gen = torch.Generator().manual_seed(6)
    W = (prob.w_star + torch.tensor(e0)).repeat(K, 1)
    losses = [prob.closed_objective(W)]
    for _ in range(T):
        idx = torch.argsort(torch.rand(K, N, generator=gen), dim=1)[:, :b]  # without replacement
        W = W.detach().requires_grad_(True)
        loss = prob.per_sample_loss(W, prob.X[idx], prob.y[idx]).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, W)
        W = W.detach() - eta * grad
        losses.append(prob.closed_objective(W))
    f = torch.stack(losses).numpy()
    se = f.std(axis=1) / np.sqrt(K)
    assert np.all(np.abs(f.mean(axis=1) - expected) <= Z_SE * se + 1e-12)
    # with replacement the floor would be larger by (N − 1)/(N − b): the test can tell
    with_repl = sgd_transient_excess_loss(A, C, eta, e0, T, b)
    assert abs(f[-1].mean() - with_repl[-1]) > Z_SE * se[-1]


def test_momentum_closed_form_equals_augmented_lyapunov():
    rng = np.random.default_rng(7)
    lam = np.array([0.2, 1.0, 3.0])
    c = np.array([1.0, 0.4, 2.0])
    A, Q = _spd(rng, lam)
    C = (Q * c) @ Q.T
    for eta, m in [(0.05, 0.9), (0.3, 0.5), (0.5, 0.0), (0.8, 0.6)]:
        assert momentum_stationary_excess_loss_eig(lam, c, eta, m, b=2) == pytest.approx(
            momentum_stationary_excess_loss(A, C, eta, m, b=2), rel=1e-9
        )
    # m = 0 is plain SGD
    np.testing.assert_allclose(
        momentum_stationary_covariance(A, C, 0.3, 0.0, 2),
        sgd_stationary_covariance(A, C, 0.3, 2),
        rtol=1e-10,
    )
    # small η: heavy ball is SGD with the effective step η/(1 − m)
    m = 0.9
    for eta in [1e-3, 1e-4]:
        ratio = momentum_stationary_excess_loss_eig(
            lam, c, eta, m
        ) / sgd_stationary_excess_loss_eig(lam, c, eta / (1 - m), 1)
        assert abs(ratio - 1) < eta * lam.max() / (1 - m)


def test_momentum_stationary_matches_simulation():
    A, C = _problem(8)
    eta, m, b, K = 0.05, 0.8, 1, 20000
    E = _simulate_sgd(A, C, eta, b, np.zeros(3), 600, K, seed=9, momentum=m, keep_all=False)
    f = _loss(A, E)
    target = momentum_stationary_excess_loss(A, C, eta, m, b)
    assert abs(f.mean() - target) < Z_SE * f.std() / np.sqrt(K)


def test_bcn_fixed_step_bound_holds_and_limit_dominates_floor():
    lam = np.array([0.25, 1.0, 2.0])
    c = np.array([1.0, 1.0, 1.0])
    e0 = np.array([3.0, 2.0, -1.0])
    b, T = 2, 200
    k = bcn_constants_quadratic(lam, c.sum(), b)
    assert (k.L, k.c, k.M) == (2.0, 0.25, 1.5)
    F1 = 0.5 * np.sum(lam * e0**2)
    for eta in [0.5, 0.2, 0.05]:
        exact = sgd_transient_excess_loss_eig(lam, c, eta, e0, np.arange(T + 1), b)
        bound = bcn_fixed_step_bound(eta, k, F1, np.arange(T + 1))
        assert np.all(exact <= bound * (1 + 1e-12))
        assert sgd_stationary_excess_loss_eig(lam, c, eta, b) <= bcn_fixed_step_limit(eta, k)
    # and in simulation (diagonal quadratic)
    K = 5000
    f = _loss(np.diag(lam), _simulate_sgd(np.diag(lam), np.diag(c), 0.5, b, e0, T, K, seed=10))
    bound = bcn_fixed_step_bound(0.5, k, F1, np.arange(T + 1))
    assert np.all(f.mean(axis=1) <= bound + Z_SE * f.std(axis=1) / np.sqrt(K))
    with pytest.raises(ValueError):
        bcn_fixed_step_bound(0.6, k, F1, 1)  # ᾱ > μ/(L M_G) = 1/L


def test_stability_threshold():
    lam = np.array([0.5, 4.0])
    L = lam.max()
    assert stability_threshold(L) == 0.5
    sgd_stationary_covariance(np.diag(lam), 1.0, 0.99 * stability_threshold(L))
    with pytest.raises(ValueError):
        sgd_stationary_covariance(np.diag(lam), 1.0, 1.01 * stability_threshold(L))
    m = 0.5
    eta_max = stability_threshold(L, m)
    momentum_stationary_covariance(np.diag(lam), 1.0, 0.99 * eta_max, m)
    with pytest.raises(ValueError):
        momentum_stationary_covariance(np.diag(lam), 1.0, 1.01 * eta_max, m)
    # the noise floor blows up as η → 2/L
    floors = [sgd_stationary_excess_loss_eig(lam, 1.0, f * 0.5) for f in (0.9, 0.99, 0.999)]
    assert floors[0] < floors[1] < floors[2]
