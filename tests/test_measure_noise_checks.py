"""unbiasedness_test on unbiased and biased minibatch samplers; gradcheck on a wrong backward."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sgdlab.measure.noise.checks import gradcheck, unbiasedness_test


def softmax_regression(n: int, d_in: int, k: int, gen: torch.Generator):
    """Per-sample gradients [n, k·d_in] of cross-entropy at a fixed W (closed form)."""
    centers = 1.5 * torch.randn(k, d_in, generator=gen, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=gen)
    x = centers[y] + torch.randn(n, d_in, generator=gen, dtype=torch.float64)
    W = 0.1 * torch.randn(k, d_in, generator=gen, dtype=torch.float64)
    p = torch.softmax(x @ W.T, 1)
    loss = -torch.log(p[torch.arange(n), y])
    r = p - nn.functional.one_hot(y, k).double()
    grads = (r.unsqueeze(2) * x.unsqueeze(1)).reshape(n, -1)  # (p − e_y) x_iᵀ
    return grads, y, loss


def draws(grads: torch.Tensor, pool: torch.Tensor, M: int, b: int, gen: torch.Generator):
    """M minibatch gradients, each the mean of b samples drawn with replacement from pool."""
    idx = pool[torch.randint(0, pool.numel(), (M, b), generator=gen)]
    return grads[idx].mean(1)


@pytest.mark.parametrize(("d_in", "k", "M"), [(5, 3, 80), (40, 5, 30)])
def test_unbiased_passes_biased_is_flagged(d_in: int, k: int, M: int) -> None:
    gen = torch.Generator().manual_seed(0)
    grads, y, loss = softmax_regression(600, d_in, k, gen)
    full = grads.mean(0)
    everyone = torch.arange(600)
    hardest = int(torch.stack([loss[y == c].mean() for c in range(k)]).argmax())
    easy = everyone[y != hardest]  # a sampler that silently drops the hardest class
    for method in ("split", "hotelling") if k * d_in < M else ("split",):
        ok = unbiasedness_test(draws(grads, everyone, M, 16, gen), full, method=method)
        bad = unbiasedness_test(draws(grads, easy, M, 16, gen), full, method=method)
        assert ok.p_value > 0.01, (method, ok)
        assert bad.p_value < 1e-4, (method, bad)
        assert bad.bias_norm > 3 * bad.bias_norm_null


def test_split_test_is_calibrated_when_d_exceeds_m() -> None:
    """Under H0 the rejection rate at α = 0.1 is ≤ α (Bonferroni) within 4 binomial SEs."""
    gen = torch.Generator().manual_seed(1)
    grads, _, _ = softmax_regression(400, 40, 5, gen)  # d = 200 > M = 24
    full = grads.mean(0)
    R, alpha = 300, 0.1
    rejections = sum(
        unbiasedness_test(draws(grads, torch.arange(400), 24, 8, gen), full).p_value < alpha
        for _ in range(R)
    )
    assert rejections / R < alpha + 4 * math.sqrt(alpha * (1 - alpha) / R)
    assert rejections > 0  # not vacuous: p-values do spread over [0, 1]


def test_sampler_callable() -> None:
    gen = torch.Generator().manual_seed(2)
    grads, _, _ = softmax_regression(300, 5, 3, gen)
    full = grads.mean(0)
    sampler = lambda: grads[torch.randint(0, 300, (8,), generator=gen)].mean(0)  # noqa: E731
    res = unbiasedness_test(sampler, full, n_draws=100)
    assert res.method == "hotelling" and res.n_draws == 100 and res.p_value > 0.01
    with pytest.raises(ValueError):
        unbiasedness_test(sampler, full)


class WrongSquare(torch.autograd.Function):
    """x², with a deliberately wrong backward (factor 2.02 instead of 2)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 2.02 * x * g


class Net(nn.Module):
    def __init__(self, wrong: bool) -> None:
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 3)
        self.wrong = wrong

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = WrongSquare.apply(h) if self.wrong else h * h
        return self.b(torch.tanh(h))


def test_gradcheck_passes_correct_and_catches_wrong_backward() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 4, generator=gen)
    y = torch.randint(0, 3, (16,), generator=gen)
    good = gradcheck(Net(False), nn.CrossEntropyLoss(), x, y, generator=gen)
    assert good.ok and good.max_rel_error < 1e-6 and good.n_checked == 16 + 6 + 16 + 3
    torch.manual_seed(0)
    bad = gradcheck(Net(True), nn.CrossEntropyLoss(), x, y, n_coords=8)
    assert not bad.ok and bad.per_param["a.weight"] > 1e-3
    assert bad.per_param["b.weight"] < 1e-6  # the layer after the bug is still right
