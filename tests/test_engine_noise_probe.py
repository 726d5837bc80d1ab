"""Engine noise probe: agrees with sgdlab.measure.gradient_noise; recovers tr Σ on quadratic."""

import numpy as np
import torch

import sgdlab
from sgdlab.engine.noise_probe import noise_statistics
from sgdlab.measure import gradient_noise
from sgdlab.problems import build_problem
from sgdlab.problems.autodiff import per_sample_gradients
from sgdlab.rng import Streams


def test_probe_matches_module_instrument_float64():
    p = build_problem("logistic_regression", {"dataset": "iris", "l2": 1e-2}, Streams(0))
    g = torch.Generator().manual_seed(0)
    W = 0.3 * torch.randn(3, p.dim, generator=g, dtype=torch.float64)
    idx = torch.randint(0, p.n, (3, 16), generator=g)
    x, y = p.X[idx], p.y[idx]
    stats = noise_statistics(p, W, x, y, torch.full((3,), 0.1, dtype=torch.float64))
    for k in range(3):
        model, loss_fn = p.to_module(W[k])
        ref = gradient_noise(model, loss_fn, x[k], y[k].long())
        assert np.isclose(float(stats["noise_trace"][k]), ref.trace_cov, rtol=1e-9)
        assert np.isclose(float(stats["noise_grad_sq"][k]), ref.grad_norm_sq, rtol=1e-9)
        assert np.isclose(float(stats["noise_gsnr"][k]), ref.mean_gsnr, rtol=1e-9)


def test_per_sample_gradients_equal_loop():
    p = build_problem("linear_regression", {"dim": 3}, Streams(1))
    g = torch.Generator().manual_seed(1)
    W = torch.randn(2, 3, generator=g, dtype=torch.float64)
    x, y = p.sample(g, 10)
    x, y = x.reshape(2, 5, 3), y.reshape(2, 5)
    fast = per_sample_gradients(p, W, x, y)
    for k in range(2):
        for i in range(5):
            w = W[k : k + 1].clone().requires_grad_(True)
            (gi,) = torch.autograd.grad(p.per_sample_loss(w, x[k : k + 1, i : i + 1],
                                                           y[k : k + 1, i : i + 1]).sum(), w)
            torch.testing.assert_close(fast[k, i], gi[0], rtol=1e-12, atol=1e-12)


def test_engine_records_noise_and_recovers_trace_on_quadratic():
    cfg = {
        "problem": {"name": "quadratic", "dim": 5, "noise_std": 2.0},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "batch": {"size": 16, "sampling": "stream"},
        "chains": 32, "steps": 200, "dtype": "float64", "seed": 2,
        "record": {"every": 10, "noise": True},
    }
    res = sgdlab.run(cfg)
    _, tr = res.metric("noise_trace")
    # tr Σ = tr C = 5·σ² = 20 at every w; each estimate is unbiased; chains × steps independent
    # batches → the mean is within 4 SE of 20
    vals = tr.reshape(-1)
    se = vals.std(ddof=1) / np.sqrt(vals.size)
    assert abs(vals.mean() - 20.0) < 4 * se
    _, temp = res.metric("noise_temperature")
    assert np.allclose(temp, 0.05 * tr / 5 / 32)


def test_probe_uses_the_finite_population_formulas_of_its_sampler():
    """Distinct samples of N: B_simple and T as gradient_noise(population=N) gives them; the
    full batch (gradient descent) has no sampling noise, so T = 0 there."""
    p = build_problem("logistic_regression", {"dataset": "iris", "l2": 1e-2}, Streams(0))
    g = torch.Generator().manual_seed(3)
    W = 0.3 * torch.randn(2, p.dim, generator=g, dtype=torch.float64)
    idx = torch.stack([torch.randperm(p.n, generator=g)[:20] for _ in range(2)])
    x, y = p.X[idx], p.y[idx]
    lr = torch.full((2,), 0.1, dtype=torch.float64)
    stats = noise_statistics(p, W, x, y, lr, population=p.n)
    for k in range(2):
        model, loss_fn = p.to_module(W[k])
        ref = gradient_noise(model, loss_fn, x[k], y[k].long(), population=p.n)
        assert np.isclose(float(stats["noise_b_simple"][k]), ref.b_simple_unbiased, rtol=1e-9)
        want = sgdlab.measure.temperature(0.1, 20, ref, replacement=False).value
        assert np.isclose(float(stats["noise_temperature"][k]), want, rtol=1e-9)
    res = sgdlab.run({
        "problem": {"name": "logistic_regression", "dataset": "iris"},
        "optimizer": {"name": "sgd", "lr": 0.1}, "batch": {"sampling": "full"},
        "chains": 2, "steps": 5, "dtype": "float64", "record": {"every": 1, "noise": True},
    })  # fmt: skip
    _, temp = res.metric("noise_temperature")
    assert np.all(temp == 0.0)
    _, bs = res.metric("noise_b_simple")
    _, tr = res.metric("noise_trace")
    _, g2 = res.metric("noise_grad_sq")
    assert np.allclose(bs, tr * (p.n - 1) / p.n / g2, rtol=1e-12)  # |ḡ|² is exact
