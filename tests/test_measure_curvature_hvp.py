"""Hessian-vector products: both methods and chunking against the exact autograd Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh
from torch import nn

from sgdlab.measure.curvature.hvp import (
    FunctionObjective,
    HessianOperator,
    ModelObjective,
    hessian_matrix,
    hessian_operator,
)

F64 = torch.float64


def _net(gen: torch.Generator, bn: bool = False, dropout: bool = False) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(4, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers.append(nn.Tanh())
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(8, 3))
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.7)
    return net


@pytest.fixture
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Generator]:
    gen = torch.Generator().manual_seed(0)
    net = _net(gen)
    x = torch.randn(40, 4, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (40,), generator=gen)
    return net, x, y, gen


LOSS = nn.functional.cross_entropy


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny float64 kernels run fastest on one thread (and robustly on a shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_hvp_matches_exact_hessian(setup, method, chunk) -> None:
    net, x, y, gen = setup
    H = hessian_matrix(net, LOSS, x, y)
    op = HessianOperator.from_model(net, LOSS, x, y, chunk_size=chunk, method=method)
    assert op.dim == H.shape[0] == sum(p.numel() for p in net.parameters())
    assert op.dtype == F64
    for _ in range(3):
        v = torch.randn(op.dim, generator=gen, dtype=F64)
        torch.testing.assert_close(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)
    assert op.n_hvp == 3
    op.reset_count()
    assert op.n_hvp == 0


def test_dense_and_linear_operator(setup) -> None:
    net, x, y, _ = setup
    H = hessian_matrix(net, LOSS, x, y)
    torch.testing.assert_close(hessian_matrix(net, LOSS, x, y, block=16), H)
    op = HessianOperator.from_model(net, LOSS, x, y)
    torch.testing.assert_close(op.dense(), H, rtol=1e-10, atol=1e-12)
    assert op.n_hvp == op.dim
    lin = op.as_linear_operator()
    assert lin.shape == (op.dim, op.dim)
    top = eigsh(lin, k=1, which="LA", tol=1e-12, return_eigenvectors=False)[0]
    assert top == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-9)


def test_chunked_loss_is_the_dataset_mean(setup) -> None:
    net, x, y, _ = setup
    obj = ModelObjective(net, LOSS, x, y, chunk_size=9)  # uneven chunks: 9, 9, 9, 9, 4
    value, grad = obj.value_and_grad(obj.w0)
    assert float(value) == pytest.approx(float(LOSS(net(x), y).detach()), rel=1e-13)
    net.zero_grad()
    LOSS(net(x), y).backward()
    ref = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-14)


def test_mode_is_restored_and_buffers_untouched() -> None:
    gen = torch.Generator().manual_seed(1)
    net = _net(gen, bn=True, dropout=True)
    net.eval()
    net[0].train()  # a mixed state must come back exactly
    flags = [m.training for m in net.modules()]
    stats = net[1].running_mean.clone()
    x = torch.randn(16, 4, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (16,), generator=gen)
    # eval: dropout off, BN uses running stats -> deterministic and equal to the exact Hessian
    op = HessianOperator.from_model(net, LOSS, x, y, mode="eval")
    v = torch.randn(op.dim, generator=gen, dtype=F64)
    torch.testing.assert_close(op.matvec(v), hessian_matrix(net, LOSS, x, y) @ v)
    # train mode with batch statistics (no dropout randomness in a BN-only copy)
    net_bn = _net(torch.Generator().manual_seed(1), bn=True)
    op_t = HessianOperator.from_model(net_bn, LOSS, x, y, mode="train")
    H_t = hessian_matrix(net_bn, LOSS, x, y, mode="train")
    torch.testing.assert_close(op_t.matvec(v[: op_t.dim]), H_t @ v[: op_t.dim])
    assert not torch.allclose(H_t, hessian_matrix(net_bn, LOSS, x, y, mode="eval"))
    assert [m.training for m in net.modules()] == flags
    torch.testing.assert_close(net[1].running_mean, stats)
    torch.testing.assert_close(net_bn[1].running_mean, torch.zeros(8, dtype=F64))


def test_function_objective_and_dispatch() -> None:
    A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64)

    def f(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * w @ A @ w + (w**4).sum()

    w = torch.tensor([0.3, -0.2], dtype=F64)
    H = A + torch.diag(12 * w**2)
    for method in ("double_backward", "forward_over_reverse"):
        op = HessianOperator.from_function(f, w, method=method)
        torch.testing.assert_close(op.dense(), H)
    # batched objective (a problem's objective(W [K, d]) -> [K])
    obj = FunctionObjective.from_batched(lambda W: torch.stack([f(r) for r in W]))
    torch.testing.assert_close(obj.hvp(w, torch.ones(2, dtype=F64)), H @ torch.ones(2, dtype=F64))
    # an affine function has a zero Hessian, not an error
    assert torch.equal(
        FunctionObjective(lambda w: w.sum()).hvp(w, torch.ones(2, dtype=F64)),
        torch.zeros(2, dtype=F64),
    )
    assert hessian_operator(A).matvec(np.ones(2)).tolist() == [3.0, 4.0]
    assert hessian_operator(lambda v: 2 * v, dim=2).matvec(torch.ones(2, dtype=F64)).tolist() == [
        2.0,
        2.0,
    ]
    with pytest.raises(ValueError, match="dim="):
        hessian_operator(lambda v: v)
    with pytest.raises(ValueError, match="loss_fn"):
        hessian_operator(nn.Linear(2, 1))
    with pytest.raises(ValueError, match="length"):
        HessianOperator.from_matrix(A).matvec(torch.ones(3, dtype=F64))


def test_tuple_inputs_are_refused_with_a_message() -> None:
    net = nn.Linear(3, 2).double()
    x = torch.zeros(4, 3, dtype=F64)
    with pytest.raises(TypeError, match="single tensors"):
        HessianOperator.from_model(net, LOSS, (x,), torch.zeros(4, dtype=torch.long))
