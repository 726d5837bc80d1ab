"""Protocol checks every built-in problem must pass (float64, fixed seeds).

References are slow and obviously correct: a Python loop over chains, a Python loop over
samples with one backward pass each, ``torch.autograd.functional.hessian`` of the full
objective. Monte Carlo checks use tolerances of 5 standard errors estimated from the same
samples.

Covers: ``sgdlab.problems.autodiff``, ``sgdlab.problems.classifier``.
"""

from __future__ import annotations

import pytest
import torch

from sgdlab.problems import build_problem
from sgdlab.rng import Streams

CASES = {
    "anharmonic_2d": ("anharmonic", {"dim": 2, "kappa": 1.5, "beta": 0.5, "k": 2.0,
                                     "noise_std": 0.5}),
    "piecewise_two_basin": ("piecewise_two_basin", {"noise_std": 0.5}),
    "linreg_pop": ("linear_regression", {"dim": 3, "rotate": True, "mu": 0.3, "L": 2.0}),
    "linreg_finite": ("linear_regression", {"dim": 3, "n": 40, "rotate": True, "mu": 0.5}),
    "logreg_iris": ("logistic_regression", {"dataset": "iris", "l2": 0.01}),
    "logreg_synth": (
        "logistic_regression",
        {
            "dataset": "synthetic",
            "n_samples": 90,
            "n_features": 3,
            "n_classes": 3,
            "separation": 2.0,
            "label_noise": 0.1,
            "l2": 0.1,
            "penalize_bias": True,
        },
    ),
    "logreg_wine_noreg": ("logistic_regression", {"dataset": "wine", "subsample": 60}),
    "mlp_tanh": ("mlp", {"dataset": "iris", "widths": [4], "activation": "tanh"}),
    "mlp_relu_dropout": (
        "mlp",
        {
            "dataset": "synthetic",
            "n_samples": 50,
            "n_features": 3,
            "n_classes": 2,
            "widths": [3, 2],
            "dropout": 0.3,
        },
    ),
    "double_well_2d": ("double_well", {"dim": 2, "h": 0.7, "k": 2.0, "noise_std": 0.5}),
    "tilted": ("tilted_double_well", {"c": 0.4, "noise_std": 0.8}),
    "two_basin": ("two_basin", {"dim": 2}),
    "saddle": ("saddle", {"curvature_x": 2.0, "negative_curvature": 0.5, "minima_y": 1.5}),
    "rastrigin": ("rastrigin", {"dim": 2, "A": 1.0, "extent": 2.0}),
}

_CACHE: dict[str, object] = {}


def make(case: str, dtype: torch.dtype = torch.float64):
    key = f"{case}-{dtype}"
    if key not in _CACHE:
        name, params = CASES[case]
        _CACHE[key] = build_problem(name, params, Streams(7), dtype)
    return _CACHE[key]


def point(problem, seed: int = 0) -> torch.Tensor:
    """A generic evaluation point: a random init plus a small random offset."""
    g = torch.Generator().manual_seed(seed)
    w = problem.init_params(g)
    return w + 0.3 * torch.randn(problem.dim, generator=g, dtype=w.dtype)


def batch(problem, K: int, b: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``x [K,b,...]``, ``y [K,b]`` with different samples per chain."""
    g = torch.Generator().manual_seed(seed)
    if problem.finite:
        idx = torch.randint(0, problem.n, (K, b), generator=g)
        return problem.X[idx], problem.y[idx]
    x, y = problem.sample(g, K * b)
    return x.reshape(K, b, *x.shape[1:]), y.reshape(K, b)


def objective_of(problem):
    return lambda v: problem.objective(v.unsqueeze(0))[0]


def loop_per_sample_grads(problem, w, X, y) -> torch.Tensor:
    rows = []
    for i in range(X.shape[0]):
        v = w.detach().clone().requires_grad_(True)
        f = problem.per_sample_loss(v.unsqueeze(0), X[i : i + 1].unsqueeze(0), y[i : i + 1][None])
        (g,) = torch.autograd.grad(f.sum(), v)
        rows.append(g)
    return torch.stack(rows)


def chain_per_sample_grads(problem, w, x, y) -> torch.Tensor:
    """Many samples at once: one chain per sample (chains are checked independent below)."""
    W = w.detach().unsqueeze(0).repeat(x.shape[0], 1).requires_grad_(True)
    f = problem.per_sample_loss(W, x.unsqueeze(1), y.unsqueeze(1))
    (g,) = torch.autograd.grad(f.sum(), W)
    return g


def assert_within_se(est, se, exact, k=5.0, floor=1e-12):
    bad = (est - exact).abs() > k * se + floor
    assert not bad.any(), f"max |err|/SE = {((est - exact).abs() / (se + floor)).max():.2f}"


@pytest.fixture(params=list(CASES))
def problem(request):
    return make(request.param)


def test_params_fields_are_described(problem):
    for field_name, field in type(problem).Params.model_fields.items():
        assert field.description, f"{problem.name}.{field_name} lacks a description"
    assert problem.summary


def test_per_sample_loss_matches_loop_over_chains(problem):
    K, b = 3, 5
    W = torch.stack([point(problem, s) for s in range(K)])
    x, y = batch(problem, K, b)
    full = problem.per_sample_loss(W, x, y)
    assert full.shape == (K, b)
    loop = torch.cat(
        [problem.per_sample_loss(W[k : k + 1], x[k : k + 1], y[k : k + 1]) for k in range(K)]
    )
    torch.testing.assert_close(full, loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(problem.loss(W, x, y), full.mean(dim=1), rtol=1e-14, atol=0)


def test_shared_batch_fast_path_matches_per_chain_products(problem):
    """A batch broadcast to all chains (stride 0, as in F) gives the same losses as copies."""
    K, b = 4, 6
    W = torch.stack([point(problem, s) for s in range(K)])
    x, y = batch(problem, 1, b)
    xs, ys = x.expand(K, *x.shape[1:]), y.expand(K, b)
    torch.testing.assert_close(
        problem.per_sample_loss(W, xs, ys),
        problem.per_sample_loss(W, xs.contiguous(), ys.contiguous()),
        rtol=1e-12,
        atol=1e-12,
    )


def test_grad_F_matches_autograd_of_objective(problem):
    W = torch.stack([point(problem, s) for s in range(2)]).requires_grad_(True)
    (auto,) = torch.autograd.grad(problem.objective(W).sum(), W)
    closed = problem.grad_F(W.detach())
    assert closed is not None
    torch.testing.assert_close(closed, auto, rtol=1e-9, atol=1e-11)


def test_hessian_matches_autograd_of_objective(problem):
    w = point(problem)
    auto = torch.autograd.functional.hessian(objective_of(problem), w, vectorize=True)
    H = problem.hessian(w)
    assert H.shape == (problem.dim, problem.dim)
    torch.testing.assert_close(H, auto, rtol=1e-8, atol=1e-10)


def test_grad_cov_matches_per_sample_gradients(problem):
    w = point(problem)
    Sigma = problem.grad_cov(w)
    assert Sigma.shape == (problem.dim, problem.dim)
    if problem.finite:  # exact: the 1/N covariance of all N per-sample gradients
        G = loop_per_sample_grads(problem, w, problem.X, problem.y)
        Gc = G - G.mean(dim=0)
        torch.testing.assert_close(Sigma, Gc.T @ Gc / problem.n, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(G.mean(dim=0), problem.grad_F(w[None])[0], rtol=1e-9, atol=1e-12)
        return
    M = 40_000
    x, y = problem.sample(torch.Generator().manual_seed(3), M)
    G = chain_per_sample_grads(problem, w, x, y)
    mean = G.mean(dim=0)
    Gc = G - mean
    prods = Gc.unsqueeze(2) * Gc.unsqueeze(1)  # [M, d, d]
    assert_within_se(prods.mean(0), prods.std(0) / M**0.5, Sigma)
    assert_within_se(mean, G.std(0) / M**0.5, problem.grad_F(w[None])[0])
    f = problem.per_sample_loss(w[None].expand(M, -1), x.unsqueeze(1), y.unsqueeze(1))[:, 0]
    assert_within_se(f.mean(), f.std() / M**0.5, problem.objective(w[None])[0])


def test_minimiser_is_stationary_with_value_f_star(problem):
    w_star = problem.w_star
    if w_star is None:
        assert problem.f_star is None
        pytest.skip(f"{problem.name}: no known minimiser for this configuration")
    g = problem.grad_F(w_star[None])[0]
    assert g.norm() <= 1e-9 * max(1.0, problem.hessian(w_star).abs().max().item())
    F = problem.objective(w_star[None])[0].item()
    assert F == pytest.approx(problem.f_star, rel=1e-12, abs=1e-12)
    ev = torch.linalg.eigvalsh(problem.hessian(w_star))
    assert ev.min() >= -1e-10 * ev.abs().max()
    # no lower value nearby
    g = torch.Generator().manual_seed(5)
    near = w_star + 1e-3 * torch.randn(16, problem.dim, generator=g, dtype=w_star.dtype)
    assert (problem.objective(near) >= problem.f_star - 1e-12).all()


def test_init_params_shape_and_determinism(problem):
    a = problem.init_params(torch.Generator().manual_seed(11))
    b = problem.init_params(torch.Generator().manual_seed(11))
    assert a.shape == (problem.dim,) and a.dtype == torch.float64
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(problem.init_params(None), problem.init_params(None), rtol=0, atol=0)


def test_module_view_gives_the_same_loss(problem):
    w = point(problem)
    x, y = batch(problem, 1, 7)
    model, loss_fn = problem.to_module(w)
    model.eval()
    with torch.no_grad():
        got = loss_fn(model(x[0]), y[0])
    torch.testing.assert_close(got, problem.loss(w[None], x, y)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "case", ["linreg_pop", "linreg_finite", "logreg_iris", "mlp_tanh", "tilted"]
)
def test_float32_problems_agree_with_float64(case):
    p64, p32 = make(case), make(case, torch.float32)
    assert p32.dim == p64.dim
    w = point(p64)
    F32 = p32.objective(w.float()[None])
    assert F32.dtype == torch.float32
    torch.testing.assert_close(F32.double(), p64.objective(w[None]), rtol=1e-5, atol=1e-6)
    x, y = batch(p32, 2, 4)
    assert p32.per_sample_loss(w.float()[None].expand(2, -1), x, y).dtype == torch.float32
    assert p32.init_params(torch.Generator().manual_seed(0)).dtype == torch.float32


def test_same_seed_same_data_other_seed_other_data():
    name, params = CASES["linreg_finite"]
    a = build_problem(name, params, Streams(1))
    b = build_problem(name, params, Streams(1))
    c = build_problem(name, params, Streams(2))
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert not torch.equal(a.X, c.X)
    d = build_problem(name, params, Streams(1, seeds={"sampling": 5}))
    assert torch.equal(a.X, d.X)  # only the data stream decides the data


@pytest.mark.parametrize("name", ["linear_regression", "logistic_regression", "mlp"])
def test_to_module_leaves_the_global_rng_alone(name):
    """Library code draws only from named streams: building a module view must not consume
    torch's global generator (nn.Linear's default init would)."""
    p = build_problem(name, {}, Streams(0), torch.float64)
    w = p.init_params(torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    p.to_module(w)
    assert torch.equal(state, torch.get_rng_state())
