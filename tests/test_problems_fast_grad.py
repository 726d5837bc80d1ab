"""Closed-form minibatch gradients (the engine's fast path) equal the autograd reference."""

import pytest
import torch

from sgdlab.problems import PROBLEMS, Problem, build_problem
from sgdlab.rng import Streams

CASES = [
    ("quadratic", {"dim": 5, "rotate": True}),
    ("quadratic", {"dim": 4, "n": 30}),
    ("linear_regression", {"dim": 4}),
    ("linear_regression", {"dim": 3, "n": 40}),
    ("logistic_regression", {"dataset": "iris", "l2": 0.0}),
    ("logistic_regression", {"dataset": "wine", "l2": 0.1, "penalize_bias": True}),
    ("logistic_regression", {"dataset": "digits", "l2": 1e-3}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_fast_gradient_equals_autograd_float64(name, params):
    p = build_problem(name, params, Streams(0), torch.float64)
    g = torch.Generator().manual_seed(1)
    K, b = 3, 7
    W = torch.randn(K, p.dim, generator=g, dtype=torch.float64)
    if p.finite:
        idx = torch.randint(0, p.n, (K, b), generator=g)
        x, y = p.X[idx], p.y[idx]
    else:
        x, y = p.sample(g, K * b)
        x, y = x.reshape(K, b, *x.shape[1:]), y.reshape(K, b)
    fast = p.loss_and_grad(W, x, y)
    ref = p.loss_and_grad_autograd(W, x, y)
    assert type(p).loss_and_grad is not Problem.loss_and_grad  # a real override
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast[1], ref[1], rtol=1e-12, atol=1e-12)


def test_every_problem_has_a_working_loss_and_grad():
    for name in PROBLEMS:
        p = build_problem(name, {}, Streams(0), torch.float64)
        g = torch.Generator().manual_seed(2)
        W = torch.stack([p.init_params(g) for _ in range(2)])
        if p.finite:
            idx = torch.randint(0, p.n, (2, 3), generator=g)
            x, y = p.X[idx], p.y[idx]
        else:
            x, y = p.sample(g, 6)
            x, y = x.reshape(2, 3, *x.shape[1:]), y.reshape(2, 3)
        loss, grad = p.loss_and_grad(W, x, y)
        assert loss.shape == (2,) and grad.shape == W.shape
