"""MLP: dropout through the step-noise hook, module view, PyTorch-default initialisation."""

from __future__ import annotations

import pytest
import torch

from sgdlab.problems import build_problem
from sgdlab.rng import Streams

PARAMS = {"dataset": "iris", "widths": [6, 5], "dropout": 0.4, "activation": "relu"}


@pytest.fixture(scope="module")
def net():
    return build_problem("mlp", PARAMS, Streams(0))


def _noise(net, K, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        key: torch.rand(K, *shape, generator=g, dtype=torch.float64)
        for key, (_, shape, _) in net.step_noise(b).items()
    }


def test_step_noise_declares_one_uniform_draw_per_hidden_layer(net):
    assert net.step_noise(7) == {
        "dropout_l1": ("dropout", (7, 6), "uniform"),
        "dropout_l2": ("dropout", (7, 5), "uniform"),
    }
    assert build_problem("mlp", {"dataset": "iris"}).step_noise(7) == {}


def test_dropout_changes_the_loss_only_with_noise(net):
    K, b = 3, 8
    W = torch.stack([net.init_params(torch.Generator().manual_seed(k)) for k in range(K)])
    x, y = net.X[:b].expand(K, -1, -1), net.y[:b].expand(K, -1)
    plain = net.per_sample_loss(W, x, y)
    torch.testing.assert_close(net.per_sample_loss(W, x, y, noise=None), plain)
    torch.testing.assert_close(net.per_sample_loss(W, x, y, noise={}), plain)  # stream off
    noisy = net.per_sample_loss(W, x, y, noise=_noise(net, K, b))
    assert not torch.allclose(noisy, plain)
    no_drop = build_problem("mlp", {**PARAMS, "dropout": 0.0})
    torch.testing.assert_close(no_drop.per_sample_loss(W, x, y), plain)


def test_dropout_is_inverted_dropout_with_the_given_masks(net):
    """Reference: the module's layers with the masks applied by hand, chain by chain."""
    K, b, q = 2, 5, 0.4
    W = torch.stack([net.init_params(torch.Generator().manual_seed(k)) for k in range(K)])
    x, y = net.X[:b].expand(K, -1, -1), net.y[:b].expand(K, -1)
    noise = _noise(net, K, b, seed=4)
    got = net.per_sample_loss(W, x, y, noise=noise)
    for k in range(K):
        model, _ = net.to_module(W[k])
        lin = [m for m in model if isinstance(m, torch.nn.Linear)]
        h = x[k]
        for i, layer in enumerate(lin[:-1], start=1):
            h = torch.relu(layer(h)) * (noise[f"dropout_l{i}"][k] >= q) / (1 - q)
        ref = torch.nn.functional.cross_entropy(lin[-1](h), y[k], reduction="none")
        torch.testing.assert_close(got[k], ref.detach(), rtol=1e-12, atol=1e-12)


def test_module_is_real_linear_layers_with_dropout(net):
    w = net.init_params(None)
    model, loss_fn = net.to_module(w)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert isinstance(loss_fn, torch.nn.CrossEntropyLoss)
    assert sum(p.numel() for p in model.parameters()) == net.dim
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loss_fn(model(net.X), net.y), net.objective(w[None])[0], rtol=1e-12, atol=1e-12
        )


def test_pytorch_default_initialisation():
    p = build_problem("mlp", {"dataset": "digits", "widths": [64]})
    w = p.init_params(torch.Generator().manual_seed(1))
    (A1, b1), (A2, b2) = p.unflatten(w[None])
    for A, b in ((A1, b1), (A2, b2)):
        bound = A.shape[1] ** -0.5
        assert A.abs().max() <= bound and b.abs().max() <= bound
        z = (A / bound) ** 2  # U(−1, 1)²: mean 1/3, variance 4/45
        assert abs(z.mean() - 1 / 3) < 5 * (4 / 45 / z.numel()) ** 0.5
    fixed = p.init_params(None)
    torch.testing.assert_close(fixed, p.init_params(None), rtol=0, atol=0)
    assert not torch.equal(fixed, w)
    assert p.dim == 64 * 64 + 64 + 64 * 10 + 10


def test_grad_cov_and_hessian_use_the_deterministic_net(net):
    """Σ and ∇²F ignore dropout: they equal those of the same net with dropout 0."""
    plain = build_problem("mlp", {**PARAMS, "dropout": 0.0})
    w = net.init_params(torch.Generator().manual_seed(3))
    torch.testing.assert_close(net.grad_cov(w), plain.grad_cov(w))
    assert net.objective_affordable
