"""gradient_noise against closed forms (quadratic, Gaussian linear regression) and brute force.

Statistical tolerances are 4 standard errors: the reported SE where the test is of the
estimate itself, the closed-form SE where one exists.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sgdlab.measure.noise.per_sample import per_sample_grads
from sgdlab.measure.noise.stats import gradient_noise
from sgdlab.problems.quadratic import Quadratic, QuadraticParams
from sgdlab.rng import Streams

Z = 4.0  # standard errors allowed


def quadratic(**kw) -> Quadratic:
    params = QuadraticParams(dim=5, mu=0.2, L=2.0, rotate=True, noise="hessian", **kw)
    return Quadratic(params, Streams(0), torch.float64)


def w_at(p: Quadratic, scale: float = 1.0) -> torch.Tensor:
    return p.w_star + scale * torch.linspace(-1.0, 1.0, p.dim, dtype=torch.float64)


def zeros(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float64)


# ----------------------------------------------------------------- quadratic
def test_quadratic_full_finite_population_is_exact() -> None:
    p = quadratic(n=40)
    w = w_at(p)
    model, loss_fn = p.to_module(w)
    s = gradient_noise(model, loss_fn, p.X, zeros(40), population=40)
    grad = p.grad_F(w.unsqueeze(0))[0]
    assert s.trace_sigma == pytest.approx(float(torch.trace(p.C)), rel=1e-10)
    assert s.grad_norm_sq == pytest.approx(float(grad @ grad), rel=1e-10)
    assert s.grad_norm_sq_unbiased == pytest.approx(float(grad @ grad), rel=1e-10)
    assert s.trace_cov_se == 0.0 and s.grad_norm_sq_se == 0.0
    assert s.b_simple == pytest.approx(float(torch.trace(p.C) / (grad @ grad)), rel=1e-10)
    assert s.minibatch_variance(40, replacement=False) == 0.0
    assert s.method == {"w": "vmap"}


def test_quadratic_population_matches_closed_forms_within_se() -> None:
    p = quadratic()
    w = w_at(p)
    n = 3000
    x, _ = p.sample(torch.Generator().manual_seed(5), n)
    model, loss_fn = p.to_module(w)
    s = gradient_noise(model, loss_fn, x, zeros(n))
    C, A = p.C, p.A
    g = A @ (w - p.w_star)
    tr = float(torch.trace(C))
    # closed-form SEs: Var|ξ|² = 2 tr C² (Gaussian); Var|ḡ|² = 4 gᵀCg/n + 2 tr C²/n²
    se_tr = math.sqrt(2 * float(torch.trace(C @ C)) / n)
    se_g2 = math.sqrt(4 * float(g @ C @ g) / n + 2 * float(torch.trace(C @ C)) / n**2)
    assert abs(s.trace_cov - tr) < Z * se_tr
    assert s.trace_cov_se == pytest.approx(se_tr, rel=Z * math.sqrt(2 / n) * 3)
    assert abs(s.grad_norm_sq_unbiased - float(g @ g)) < Z * se_g2
    assert abs(s.grad_norm_sq - float(g @ g) - tr / n) < Z * se_g2
    rel = Z * (se_tr / tr + se_g2 / float(g @ g))
    assert s.b_simple_unbiased == pytest.approx(tr / float(g @ g), rel=rel)


# ----------------------------------------------------------- linear regression
def linreg_data(n: int, d: int, sigma: float, gen: torch.Generator):
    evals = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    S = (q * evals) @ q.T
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(S).T
    y = x @ w_true + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
    return S, w_true, x, y


def half_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out.squeeze(-1) - y) ** 2).mean()


def test_linear_regression_gaussian_design_closed_forms() -> None:
    gen = torch.Generator().manual_seed(2)
    d, n, sigma = 4, 4000, 0.7
    S, w_true, x, y = linreg_data(n, d, sigma, gen)
    model = nn.Linear(d, 1, bias=False).double()
    delta = torch.tensor([0.6, -0.4, 0.3, 0.5], dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_((w_true + delta).unsqueeze(0))
    s = gradient_noise(model, half_mse, x, y)
    assert s.method == {"weight": "linear"}
    Sd = S @ delta
    Sigma = torch.outer(Sd, Sd) + (delta @ Sd + sigma**2) * S  # Isserlis
    tr, g2 = float(torch.trace(Sigma)), float(Sd @ Sd)
    assert abs(s.trace_cov - tr) < Z * s.trace_cov_se
    assert abs(s.grad_norm_sq_unbiased - g2) < Z * s.grad_norm_sq_se
    rel = Z * (s.trace_cov_se / s.trace_cov + s.grad_norm_sq_se / s.grad_norm_sq)
    assert s.b_simple_unbiased == pytest.approx(tr / g2, rel=rel)
    # per-coordinate variance: diag Σ, SE of a sample variance ≈ √(Var(u_j)/n) ≤ 4·σ_j²·√(2/n)
    var = s.variance["weight"][0]
    assert torch.all((var - torch.diagonal(Sigma)).abs() < Z * torch.diagonal(Sigma) * 2.5 / n**0.5)


def test_reported_standard_errors_are_calibrated() -> None:
    """Over R independent samples the spread of the estimates matches the reported SE."""
    gen = torch.Generator().manual_seed(11)
    d, n, R = 3, 1000, 300  # heavy-tailed u_i: the SE is consistent, biased low at small n
    S, w_true, _, _ = linreg_data(2, d, 0.5, gen)
    chol = torch.linalg.cholesky(S)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_true + 0.5).unsqueeze(0))
    est = {"trace_cov": [], "grad_norm_sq": []}
    ses = {"trace_cov": [], "grad_norm_sq": []}
    for _ in range(R):
        x = torch.randn(n, d, generator=gen, dtype=torch.float64) @ chol.T
        y = x @ w_true + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
        s = gradient_noise(model, half_mse, x, y)
        for k in est:
            est[k].append(getattr(s, k))
            ses[k].append(getattr(s, k + "_se"))
    # the sd of R draws has relative SE ≈ √((κ − 1)/(4R)), κ the kurtosis of the estimate;
    # estimate it from the draws themselves
    for k in est:
        e = torch.tensor(est[k])
        sd, mean_se = float(e.std()), float(torch.tensor(ses[k]).mean())
        kurt = float(((e - e.mean()) ** 4).mean() / e.var() ** 2)
        tol = Z * math.sqrt((kurt - 1) / (4 * R))
        assert abs(sd / mean_se - 1) < tol, (k, sd, mean_se, tol)


def test_minibatch_variance_scaling_with_and_without_replacement() -> None:
    """Simulated minibatch noise: tr Σ/b with replacement, × (N−b)/(N−1) without."""
    gen = torch.Generator().manual_seed(4)
    N, d = 60, 3
    _, _, x, y = linreg_data(N, d, 0.5, gen)
    model = nn.Linear(d, 1, bias=False).double()
    s = gradient_noise(model, half_mse, x, y, population=N)
    G = per_sample_grads(model, half_mse, x, y)["weight"].reshape(N, d)
    full = G.mean(0)
    R = 4000
    for b in (1, 6, 30, 59):
        for replacement in (True, False):
            if replacement:
                idx = torch.randint(0, N, (R, b), generator=gen)
            else:
                idx = torch.rand(R, N, generator=gen).argsort(1)[:, :b]
            dev2 = ((G[idx].mean(1) - full) ** 2).sum(1)
            se = float(dev2.std()) / math.sqrt(R)
            want = s.minibatch_variance(b, replacement)
            assert abs(float(dev2.mean()) - want) < Z * se + 1e-12, (b, replacement)
    assert s.minibatch_variance(N, replacement=False) == 0.0


# ----------------------------------------------------------------- bookkeeping
def test_chunks_layers_gsnr_and_restored_state() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6), nn.Dropout(0.5), nn.Tanh(), nn.LayerNorm(6), nn.Linear(6, 2)
    ).double()
    model.train()
    model[4].train(False)  # mixed modes must come back as they were
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (30,), generator=gen)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    loss_fn = nn.CrossEntropyLoss()
    whole = gradient_noise(model, loss_fn, x, y)
    chunked = gradient_noise(model, loss_fn, x, y, batch_size=7)
    assert [m.training for m in model.modules()] == [True, True, True, True, True, False]
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())
    assert whole.mode == "mixed" and whole.n == 30  # auto: dropout off, the rest as they are
    assert whole.method["4.weight"] == "linear" and whole.method["3.weight"] == "layernorm"
    for f in ("trace_cov", "trace_cov_se", "grad_norm_sq", "grad_norm_sq_se"):
        assert getattr(chunked, f) == pytest.approx(getattr(whole, f), rel=1e-9)
    # brute force: per-parameter variance and GSNR
    model.eval()
    G = per_sample_grads(model, loss_fn, x, y)
    for k, g in G.items():
        torch.testing.assert_close(whole.variance[k], g.var(0), rtol=1e-8, atol=1e-14)
        torch.testing.assert_close(whole.gsnr[k], g.mean(0) ** 2 / g.var(0), rtol=1e-7, atol=0)
    assert set(whole.layers) == {"0", "3", "4"}
    assert sum(v.trace_cov for v in whole.layers.values()) == pytest.approx(whole.trace_cov)
    assert sum(v.num_params for v in whole.layers.values()) == whole.num_params == 56
    lay = whole.layers["4"]
    assert lay.b_simple == pytest.approx(lay.trace_cov / lay.grad_norm_sq)
    assert gradient_noise(model, loss_fn, x, y, mode=None).mode == "eval"
    with pytest.raises(ValueError):
        whole.minibatch_variance(4, replacement=False)
