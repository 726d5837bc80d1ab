"""Sharpness measures: closed forms on quadratics, brute force in 2-D, reparametrization."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from sgdlab.measure.curvature.eigs import hessian_eigs
from sgdlab.measure.curvature.hvp import FunctionObjective, ModelObjective, hessian_matrix
from sgdlab.measure.curvature.sharpness import (
    asam_sharpness,
    epsilon_sharpness,
    rho_sharpness,
    sharpness,
)
from sgdlab.problems.quadratic import Quadratic, QuadraticParams
from sgdlab.rng import Streams

F64 = torch.float64
LOSS = nn.functional.cross_entropy


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny float64 kernels run fastest on one thread (and robustly on a shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _quadratic(rotate: bool, w_star: list[float] | float = 0.0) -> Quadratic:
    lam = [5.0, 3.0, 2.0, 1.0, 0.5, 0.1]
    params = QuadraticParams(eigenvalues=lam, rotate=rotate, w_star=w_star, n=64)
    return Quadratic(params, Streams(0), F64)


W_STAR = [0.5, -1.0, 2.0, 0.0, 0.3, -0.7]


def test_rho_sharpness_is_half_rho2_lambda_max_at_a_quadratic_minimum() -> None:
    p = _quadratic(rotate=True, w_star=W_STAR)
    fn = FunctionObjective.from_batched(p.objective)
    for rho in (0.01, 0.3):
        res = rho_sharpness(fn, p.w_star, rho, lanczos_tol=1e-10)
        assert res.value == pytest.approx(0.5 * rho**2 * p.L, rel=1e-9)
        assert float(res.delta.norm()) == pytest.approx(rho, rel=1e-12)
    # the same through the module view and sharpness(): the finite problem's ξ are centred,
    # so the data-mean loss is exactly the quadratic
    model, loss_fn = p.to_module(p.w_star)
    out = sharpness(model, loss_fn, p.X, p.y, rho=0.2, tol=1e-10, trace_rel_se=1e-3)
    assert out.rho_sharpness == pytest.approx(0.5 * 0.2**2 * p.L, rel=1e-9)
    assert out.lambda_max == pytest.approx(p.L, rel=1e-10)
    assert out.loss == pytest.approx(0.0, abs=1e-14)
    assert abs(out.trace - float(p.eigenvalues.sum())) <= 4 * out.trace_stderr


def test_epsilon_sharpness_closed_form_separable() -> None:
    p = _quadratic(rotate=False, w_star=W_STAR)
    fn = FunctionObjective.from_batched(p.objective)
    lam = p.eigenvalues.numpy()
    w = p.w_star + torch.tensor([0.2, -0.1, 0.0, 0.05, -0.3, 0.4], dtype=F64)
    eps = 0.05
    u, b = (w - p.w_star).numpy(), eps * (np.abs(w.numpy()) + 1)
    f0 = 0.5 * np.sum(lam * u**2)
    fmax = 0.5 * np.sum(lam * (np.abs(u) + b) ** 2)  # each coordinate pushed outward
    res = epsilon_sharpness(fn, w, eps)
    assert res.value == pytest.approx(100 * (fmax - f0) / (1 + f0), rel=1e-9)
    np.testing.assert_allclose(np.abs(res.delta.numpy()), b, rtol=1e-12)


def test_epsilon_sharpness_is_the_best_box_vertex_at_a_rotated_minimum() -> None:
    """Convex quadratic: the box maximum is at a vertex; enumerate all 2^6 of them."""
    p = _quadratic(rotate=True, w_star=W_STAR)
    fn = FunctionObjective.from_batched(p.objective)
    eps, w = 0.01, p.w_star
    b = eps * (w.abs() + 1)
    A = p.hessian(w)
    best = max(
        0.5 * float((torch.tensor(s, dtype=F64) * b) @ A @ (torch.tensor(s, dtype=F64) * b))
        for s in itertools.product((-1.0, 1.0), repeat=6)
    )
    top = hessian_eigs(A, tol=1e-10).vectors[:, 0]
    res = epsilon_sharpness(fn, w, eps, directions=[top], n_random_starts=8)
    assert res.value == pytest.approx(100 * best, rel=1e-9)  # L(w*) = 0


def test_asam_closed_form_at_a_quadratic_minimum() -> None:
    p = _quadratic(rotate=True, w_star=W_STAR)
    fn = FunctionObjective.from_batched(p.objective)
    rho, eta = 0.2, 0.01
    T = p.w_star.abs() + eta
    lam_max = float(torch.linalg.eigvalsh(T[:, None] * p.hessian(p.w_star) * T[None, :])[-1])
    res = asam_sharpness(fn, p.w_star, rho, eta, lanczos_tol=1e-10)
    assert res.value == pytest.approx(0.5 * rho**2 * lam_max, rel=1e-9)
    assert float((res.delta / T).norm()) == pytest.approx(rho, rel=1e-12)


def _f2(W: torch.Tensor) -> torch.Tensor:
    """A smooth non-quadratic 2-D loss, vectorized over rows of W [K, 2]."""
    a, b = W[..., 0], W[..., 1]
    return torch.nn.functional.softplus(a - 2 * b) + 0.5 * (a + b) ** 2 + 0.3 * torch.sin(3 * a) * b


def test_sharpness_matches_brute_force_in_2d() -> None:
    fn = FunctionObjective.from_batched(_f2)
    w = torch.tensor([0.3, -0.2], dtype=F64)
    f0 = float(_f2(w))
    # ε-sharpness: a 1001 × 1001 grid over the box
    eps = 0.2
    b = eps * (w.abs() + 1)
    g = [torch.linspace(-float(bi), float(bi), 1001, dtype=F64) for bi in b]
    A, B = torch.meshgrid(g[0], g[1], indexing="ij")
    grid = w + torch.stack([A.reshape(-1), B.reshape(-1)], dim=1)
    brute = float(_f2(grid).max())
    res = epsilon_sharpness(fn, w, eps)
    assert res.value == pytest.approx(100 * (brute - f0) / (1 + f0), rel=1e-5)
    assert res.perturbed_loss >= brute - 1e-12
    # ρ-sharpness: a polar grid over the disc (max may be inside or on the circle)
    rho = 0.4
    r = torch.linspace(0, rho, 401, dtype=F64)
    t = torch.linspace(0, 2 * math.pi, 4001, dtype=F64)
    R, Th = torch.meshgrid(r, t, indexing="ij")
    disc = w + torch.stack([(R * torch.cos(Th)).reshape(-1), (R * torch.sin(Th)).reshape(-1)], 1)
    brute = float(_f2(disc).max())
    res = rho_sharpness(fn, w, rho, steps=50)
    assert res.value == pytest.approx(brute - f0, rel=1e-5)
    assert float(res.delta.norm()) <= rho * (1 + 1e-12)


def _relu_net(gen: torch.Generator) -> nn.Module:
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3, bias=False))
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64))
    return net


def test_dinh_rescaling_keeps_the_function_but_changes_lambda_max() -> None:
    """Dinh et al. (2017): (W1, W2) → (αW1, W2/α) is the same function with another λ_max."""
    gen = torch.Generator().manual_seed(0)
    net = _relu_net(gen)
    x = torch.randn(32, 4, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (32,), generator=gen)
    alpha = 4.0
    scaled = _relu_net(torch.Generator().manual_seed(0))
    with torch.no_grad():
        scaled[0].weight.mul_(alpha)
        scaled[2].weight.div_(alpha)
    torch.testing.assert_close(scaled(x), net(x), rtol=1e-13, atol=1e-13)
    lam = [float(hessian_eigs(m, LOSS, x, y, tol=1e-10).values[0]) for m in (net, scaled)]
    exact = [float(torch.linalg.eigvalsh(hessian_matrix(m, LOSS, x, y))[-1]) for m in (net, scaled)]
    np.testing.assert_allclose(lam, exact, rtol=1e-8)
    assert lam[1] / lam[0] > 5  # same function, a much "sharper" minimum
    # ρ-sharpness follows λ_max; the adaptive (η = 0) version is invariant
    kw = dict(measures=("rho", "asam"), rho=0.05, asam_rho=0.05, asam_eta=0.0)
    out = [
        sharpness(m, LOSS, x, y, generator=torch.Generator().manual_seed(1), **kw)
        for m in (net, scaled)
    ]
    assert out[0].loss == pytest.approx(out[1].loss, rel=1e-13)
    assert out[1].rho_sharpness > 2 * out[0].rho_sharpness
    assert out[1].asam_sharpness == pytest.approx(out[0].asam_sharpness, rel=1e-7)


def test_sharpness_one_call_on_a_model() -> None:
    gen = torch.Generator().manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 10), nn.Tanh(), nn.Linear(10, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.5)
    x = torch.randn(40, 5, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (40,), generator=gen)
    before = [p.detach().clone() for p in net.parameters()]
    out = sharpness(net, LOSS, x, y, generator=torch.Generator().manual_seed(0), trace_rel_se=0.02)
    H = hessian_matrix(net, LOSS, x, y)
    assert out.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-4)
    assert abs(out.trace - float(torch.trace(H))) <= 4 * out.trace_stderr
    assert out.epsilon_sharpness > 0 and out.rho_sharpness > 0 and out.asam_sharpness > 0
    # the ρ ascent is at least the first-order SAM point
    w0 = torch.cat([p.reshape(-1) for p in before])
    obj_fn = ModelObjective(net, LOSS, x, y)
    loss0, g = obj_fn.value_and_grad(w0)
    sam = float(obj_fn(w0 + 0.05 * g / g.norm()).detach()) - float(loss0)
    assert out.rho_sharpness >= sam - 1e-14
    assert out.n_hvp > 0 and set(out.as_dict()) >= {"lambda_max", "trace", "asam_sharpness"}
    for p, q in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, q)  # measuring never moves the weights
    only = sharpness(net, LOSS, x, y, measures=("lambda_max",))
    assert math.isnan(only.trace) and math.isnan(only.rho_sharpness)
    with pytest.raises(ValueError, match="unknown measures"):
        sharpness(net, LOSS, x, y, measures=("flatness",))
    with pytest.raises(ValueError, match="w="):
        sharpness(lambda w: (w**2).sum())
