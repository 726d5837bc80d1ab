"""Lanczos eigenvalues against eigvalsh of the exact Hessian; stopping rules; power iteration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from sgdlab.measure.curvature.eigs import hessian_eigs, lanczos, power_iteration
from sgdlab.measure.curvature.hvp import HessianOperator, hessian_matrix
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


def _mlp(sizes: tuple[int, ...], gen: torch.Generator, act: type[nn.Module] = nn.Tanh) -> nn.Module:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1]).double()
        with torch.no_grad():
            bound = sizes[i] ** -0.5
            lin.weight.copy_(
                (torch.rand(lin.weight.shape, generator=gen, dtype=F64) * 2 - 1) * bound
            )
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=gen, dtype=F64) * 2 - 1) * bound)
        layers += [lin, act()] if i < len(sizes) - 2 else [lin]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def small() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 6-16-4 tanh net (180 parameters), its exact Hessian and spectrum."""
    gen = torch.Generator().manual_seed(3)
    net = _mlp((6, 16, 4), gen)
    x = torch.randn(64, 6, generator=gen, dtype=F64)
    y = torch.randint(0, 4, (64,), generator=gen)
    H = hessian_matrix(net, LOSS, x, y)
    return net, x, y, torch.linalg.eigvalsh(H), H


def test_small_model_extremes_match_eigvalsh(small) -> None:
    net, x, y, ev, _ = small
    assert ev[0] < 0 < ev[-1]  # indefinite: λ_min is real negative curvature
    gen = torch.Generator().manual_seed(0)
    top = hessian_eigs(net, LOSS, x, y, k=3, which="largest", tol=1e-7, generator=gen)
    assert top.converged and top.method == "lanczos"
    np.testing.assert_allclose(top.values.numpy(), ev.flip(0)[:3].numpy(), rtol=1e-6)
    low = hessian_eigs(net, LOSS, x, y, k=3, which="smallest", tol=1e-7, generator=gen)
    np.testing.assert_allclose(low.values.numpy(), ev[:3].numpy(), rtol=1e-6)
    both = hessian_eigs(net, LOSS, x, y, k=1, which="both", tol=1e-7, generator=gen)
    np.testing.assert_allclose(both.values.numpy(), [ev[-1], ev[0]], rtol=1e-6)
    # forward-over-reverse gives the same spectrum
    fwd = hessian_eigs(net, LOSS, x, y, which="both", tol=1e-7, method="forward_over_reverse")
    np.testing.assert_allclose(fwd.values.numpy(), [ev[-1], ev[0]], rtol=1e-6)


def test_residuals_are_true_residuals(small) -> None:
    net, x, y, _, H = small
    op = HessianOperator.from_model(net, LOSS, x, y)
    res = lanczos(op, 2, "both", 1e-5, generator=torch.Generator().manual_seed(1))
    assert res.n_hvp == res.iterations == op.n_hvp
    true = (H @ res.vectors - res.vectors * res.values).norm(dim=0)
    np.testing.assert_allclose(res.residuals.numpy(), true.numpy(), rtol=1e-4, atol=1e-12)
    assert torch.all(res.residuals <= 1e-5 * res.values.abs())
    torch.testing.assert_close(res.vectors.norm(dim=0), torch.ones(4, dtype=F64))


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_tol_bounds_the_error_not_the_change(small, which) -> None:
    net, x, y, ev, _ = small
    exact = ev[-1] if which == "largest" else ev[0]
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        res = hessian_eigs(net, LOSS, x, y, which=which, tol=1e-3, generator=gen)
        assert res.converged
        assert abs(float(res.values[0] - exact)) <= 1e-3 * abs(float(exact))
        assert abs(float(res.values[0] - exact)) <= float(res.residuals[0])  # Weyl bound


def test_quadratic_closed_form_via_matrix_and_module() -> None:
    lam = [4.0, 2.5, 1.0, 0.5, 0.25, -0.0]
    p = Quadratic(QuadraticParams(eigenvalues=lam, rotate=True), Streams(0), F64)
    w = p.init_params(torch.Generator().manual_seed(0))
    exact = np.sort(np.array(lam))
    res = hessian_eigs(p.hessian(w), k=2, which="both", tol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.values.numpy(), [4.0, 2.5, 0.0, 0.25], rtol=1e-9, atol=1e-10)
    model, loss_fn = p.to_module(w)
    xi, dummy = p.sample(torch.Generator().manual_seed(1), 16)
    res_m = hessian_eigs(model, loss_fn, xi, dummy, k=3, tol=1e-10)
    np.testing.assert_allclose(res_m.values.numpy(), exact[::-1][:3], rtol=1e-9)
    # a plain matvec callable
    A = p.hessian(w)
    res_c = hessian_eigs(lambda v: A @ v, dim=p.dim, which="smallest", tol=1e-10, atol=1e-12)
    assert abs(float(res_c.values[0])) < 1e-10


def test_saddle_gives_negative_curvature_and_direction() -> None:
    # f(u, v) = u² − 3v² + u v at the origin: Hessian [[2, 1], [1, −6]]
    H = torch.tensor([[2.0, 1.0], [1.0, -6.0]], dtype=F64)
    op = HessianOperator.from_function(
        lambda w: w[0] ** 2 - 3 * w[1] ** 2 + w[0] * w[1], torch.zeros(2, dtype=F64)
    )
    res = hessian_eigs(op, which="smallest", tol=1e-12)
    ev, vec = torch.linalg.eigh(H)
    assert float(res.values[0]) == pytest.approx(float(ev[0]), rel=1e-12)
    assert abs(float(res.vectors[:, 0] @ vec[:, 0])) == pytest.approx(1.0, rel=1e-10)


def test_breakdown_restarts_find_repeated_eigenvalues() -> None:
    H = torch.diag(torch.tensor([5.0, 5.0, 5.0, 1.0, 1.0, 0.5], dtype=F64))
    res = hessian_eigs(H, k=3, tol=1e-10, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(res.values.numpy(), [5.0, 5.0, 5.0], rtol=1e-10)
    assert res.converged
    assert abs(torch.det(res.vectors[:3, :]).item()) == pytest.approx(1.0, rel=1e-8)


def test_power_iteration_rules() -> None:
    # λ_2/λ_1 = 0.995: the relative change of the Rayleigh quotient is tiny long before it is close
    lam = torch.tensor([1.0, 0.995, 0.99, 0.9, 0.5, 0.1], dtype=F64)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=F64))
    H = (Q * lam) @ Q.T
    gen = torch.Generator().manual_seed(2)
    pyh = power_iteration(H, tol=1e-3, rule="relative_change", generator=gen)
    assert pyh.converged and pyh.rule == "relative_change"
    assert 1.0 - float(pyh.values[0]) > 1e-3  # stopped, but farther than tol from λ_max
    res = power_iteration(H, tol=1e-3, max_iter=20000, rule="residual", generator=gen)
    assert res.converged
    assert 1.0 - float(res.values[0]) <= 1e-3  # the residual rule bounds the error
    assert res.n_hvp == res.iterations == len(res.history)
    lz = hessian_eigs(H, tol=1e-3, generator=gen)
    assert 1.0 - float(lz.values[0]) <= 1e-3 and lz.n_hvp <= 6
    with pytest.raises(ValueError, match="rule"):
        power_iteration(H, rule="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="which"):
        hessian_eigs(H, which="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", ["relative_change", "residual"])
def test_power_iteration_returns_a_consistent_pair_when_stopped_early(rule) -> None:
    """Out of iterations: value, residual and vector all belong to the same iterate."""
    lam = torch.tensor([1.0, 0.995, 0.99, 0.9, 0.5, 0.1], dtype=F64)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=F64))
    H = (Q * lam) @ Q.T
    res = power_iteration(H, tol=1e-12, max_iter=5, rule=rule,
                          generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert not res.converged and res.n_hvp == 5
    v = res.vectors[:, 0]
    theta = float(v @ H @ v)
    assert float(res.values[0]) == pytest.approx(theta, rel=1e-13)
    assert float(res.residuals[0]) == pytest.approx(float((H @ v - theta * v).norm()), rel=1e-10)


def test_digits_mlp_lambda_max_within_tol() -> None:
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    std = X.std(axis=0)
    Xt = torch.tensor((X - X.mean(axis=0)) / np.where(std > 0, std, 1.0), dtype=F64)
    yt = torch.tensor(y, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    net = _mlp((64, 8, 10), gen, nn.ReLU)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(100):
        idx = torch.randint(0, len(Xt), (32,), generator=gen)
        opt.zero_grad()
        LOSS(net(Xt[idx]), yt[idx]).backward()
        opt.step()
    lam_max = float(torch.linalg.eigvalsh(hessian_matrix(net, LOSS, Xt, yt, block=128))[-1])
    for seed in range(3):
        res = hessian_eigs(
            net, LOSS, Xt, yt, tol=1e-3, generator=torch.Generator().manual_seed(seed)
        )
        assert abs(float(res.values[0]) - lam_max) <= 1e-3 * lam_max
