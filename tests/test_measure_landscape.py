"""Landscape slices, filter normalization and the landscape figures."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sgdlab.measure.curvature.hvp import FunctionObjective, ModelObjective
from sgdlab.measure.curvature.landscape import (
    LossLine,
    filter_normalize,
    interpolation_slice,
    line_slice,
    loss_eigen_slice,
    loss_interpolation,
    loss_line,
    loss_surface,
    random_direction,
    surface_slice,
)
from sgdlab.measure.curvature.spectrum import spectral_density
from sgdlab.problems.quadratic import Quadratic, QuadraticParams
from sgdlab.report.landscape_plots import plot_loss_line, plot_loss_surface, plot_spectral_density
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


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _data(gen: torch.Generator) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    net = ConvNet().double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.5)
    x = torch.randn(20, 1, 6, 6, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (20,), generator=gen)
    return net, x, y


def test_filter_normalization_norms() -> None:
    gen = torch.Generator().manual_seed(0)
    net, _, _ = _data(gen)
    params = [p.detach() for p in net.parameters()]
    raw = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]
    for ignore in ("biasbn", None):
        out = filter_normalize(raw, params, ignore=ignore)
        for d, w in zip(out, params, strict=True):
            if w.dim() >= 2:  # each filter (Linear row, Conv output channel) has its weight's norm
                dn = d.reshape(d.shape[0], -1).norm(dim=1)
                wn = w.reshape(w.shape[0], -1).norm(dim=1)
                torch.testing.assert_close(dn, wn, rtol=1e-9, atol=0)
            elif ignore == "biasbn":
                assert torch.equal(d, torch.zeros_like(d))
            else:
                assert float(d.norm()) == pytest.approx(float(w.norm()), rel=1e-9)
    with pytest.raises(ValueError, match="ignore"):
        filter_normalize(raw, params, ignore="bias")  # type: ignore[arg-type]


def test_random_direction_is_reproducible_and_normalized() -> None:
    net, _, _ = _data(torch.Generator().manual_seed(0))
    d1 = random_direction(net, torch.Generator().manual_seed(3))
    d2 = random_direction(net, torch.Generator().manual_seed(3))
    d3 = random_direction(net, torch.Generator().manual_seed(4))
    assert torch.equal(d1, d2) and not torch.equal(d1, d3)
    obj = ModelObjective(net, LOSS, torch.zeros(1, 1, 6, 6, dtype=F64), torch.zeros(1).long())
    parts = dict(zip(obj.names, torch.split(d1, obj.numels), strict=True))
    rows = parts["fc.weight"].view(3, -1).norm(dim=1)
    torch.testing.assert_close(rows, net.fc.weight.detach().norm(dim=1))
    assert torch.equal(parts["bn.weight"], torch.zeros(4, dtype=F64))
    w = torch.ones(5, dtype=F64)
    assert float(random_direction(w, torch.Generator(), normalization="unit").norm()) == (
        pytest.approx(1.0)
    )
    with pytest.raises(ValueError, match="filters"):
        random_direction(w, torch.Generator())


def test_model_line_and_surface_values() -> None:
    net, x, y = _data(torch.Generator().manual_seed(1))
    net.eval()
    before = [p.detach().clone() for p in net.parameters()]
    d = random_direction(net, torch.Generator().manual_seed(0))
    alphas = np.linspace(-1, 1, 5)
    line = loss_line(net, LOSS, x, y, direction=d, alphas=alphas, accuracy=True)
    obj = ModelObjective(net, LOSS, x, y)
    with torch.no_grad():
        out = net(x)
        assert line.losses[2] == pytest.approx(float(LOSS(out, y)), rel=1e-12)
        assert line.accuracies[2] == pytest.approx(float((out.argmax(1) == y).double().mean()))
        for a, loss in zip(alphas, line.losses, strict=True):
            assert loss == pytest.approx(obj.evaluate(obj.w0 + a * d)[0], rel=1e-12)
    surf = loss_surface(
        net, LOSS, x, y, generator=torch.Generator().manual_seed(0), alphas=alphas, betas=alphas[:3]
    )
    assert surf.losses.shape == (5, 3) and surf.kind == "random"
    # the first random direction of the surface is the line's direction: β = 0 column = line
    np.testing.assert_allclose(surf.losses[:, 2], line.losses, rtol=1e-12)
    for p, q in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="generator"):
        loss_line(net, LOSS, x, y)


def test_interpolation_between_two_models() -> None:
    net_a, x, y = _data(torch.Generator().manual_seed(1))
    net_b, _, _ = _data(torch.Generator().manual_seed(2))
    line = loss_interpolation(net_a, LOSS, x, y, net_a, net_b, alphas=[0.0, 0.5, 1.0])
    evl = loss_interpolation(net_a, LOSS, x, y, net_a, net_b, alphas=[0.0, 1.0], mode="eval")
    with torch.no_grad():  # default mode="auto": the train-mode BatchNorm's batch statistics
        train_a, train_b = copy.deepcopy(net_a).train(), copy.deepcopy(net_b).train()
        assert line.losses[0] == pytest.approx(float(LOSS(train_a(x), y)), rel=1e-12)
        assert line.losses[2] == pytest.approx(float(LOSS(train_b(x), y)), rel=1e-12)
        net_a.eval(), net_b.eval()
        assert evl.losses[0] == pytest.approx(float(LOSS(net_a(x), y)), rel=1e-12)
        assert evl.losses[1] == pytest.approx(float(LOSS(net_b(x), y)), rel=1e-12)
    assert line.kind == "interpolation" and line.marks == {"w_a": 0.0, "w_b": 1.0}


def _quadratic() -> Quadratic:
    params = QuadraticParams(eigenvalues=[4.0, 2.0, 1.0, 0.5], rotate=True, n=32, w_star=0.3)
    return Quadratic(params, Streams(0), F64)


def test_flat_slices_on_a_problem_closed_form() -> None:
    p = _quadratic()
    gen = torch.Generator().manual_seed(0)
    d1 = random_direction(p.w_star, gen, normalization="unit")
    d2 = random_direction(p.w_star, gen, normalization="unit")
    a, b = np.linspace(-2, 2, 9), np.linspace(-1, 1, 5)
    vec = surface_slice(p.objective, p.w_star, d1, d2, a, b, vectorized=True, chunk=7)
    loop = surface_slice(FunctionObjective.from_batched(p.objective), p.w_star, d1, d2, a, b)
    np.testing.assert_allclose(vec.losses, loop.losses, rtol=1e-13)
    A = p.hessian(p.w_star)
    for i, ai in enumerate(a):
        for j, bj in enumerate(b):
            delta = ai * d1 + bj * d2
            assert vec.losses[i, j] == pytest.approx(0.5 * float(delta @ A @ delta), rel=1e-12)
    line = line_slice(p.objective, p.w_star, d1, a, vectorized=True)
    np.testing.assert_allclose(line.losses, vec.losses[:, 2], rtol=1e-12)
    w_b = p.w_star + d1
    interp = interpolation_slice(p.objective, p.w_star, w_b, [0.0, 1.0, 2.0], vectorized=True)
    np.testing.assert_allclose(interp.losses, line.losses[[4, 6, 8]], rtol=1e-12)


def test_eigenvector_slices() -> None:
    p = _quadratic()
    model, loss_fn = p.to_module(p.w_star)  # centred ξ: the data mean is exactly the quadratic
    a = np.linspace(-1, 1, 5)
    line = loss_eigen_slice(model, loss_fn, p.X, p.y, k=1, alphas=a, tol=1e-10)
    assert isinstance(line, LossLine) and line.kind == "eigenvector"
    np.testing.assert_allclose(line.losses, 0.5 * 4.0 * a**2, rtol=1e-9, atol=1e-14)
    surf = loss_eigen_slice(model, loss_fn, p.X, p.y, k=2, alphas=a, betas=a, tol=1e-10)
    expect = 0.5 * (4.0 * a[:, None] ** 2 + 2.0 * a[None, :] ** 2)
    np.testing.assert_allclose(surf.losses, expect, rtol=1e-9, atol=1e-14)


def test_figures_are_written(tmp_path) -> None:
    p = _quadratic()
    gen = torch.Generator().manual_seed(0)
    d1, d2 = (random_direction(p.w_star, gen, normalization="unit") for _ in range(2))
    line = line_slice(p.objective, p.w_star, d1, vectorized=True)
    surf = surface_slice(p.objective, p.w_star, d1, d2, vectorized=True)
    interp = interpolation_slice(p.objective, p.w_star, p.w_star + d1, vectorized=True)
    acc = LossLine(line.alphas, line.losses, np.linspace(0, 1, len(line.alphas)), "random")
    sd = spectral_density(p.hessian(p.w_star), n_runs=3, n_iter=4)
    written = [
        *plot_loss_line(line, tmp_path / "line", log=True),
        *plot_loss_line(interp, tmp_path / "interp.png"),
        *plot_loss_line(acc, tmp_path / "acc", formats=("png",)),
        *plot_loss_surface(surf, tmp_path / "figs" / "surface", log=True),
        *plot_spectral_density(sd, tmp_path / "density"),
    ]
    names = sorted(f.name for f in written)
    assert names == sorted(
        ["line.png", "line.svg", "interp.png", "interp.svg", "acc.png", "surface.png",
         "surface.svg", "density.png", "density.svg"]
    )  # fmt: skip
    for f in written:
        assert f.exists() and f.stat().st_size > 1000
    assert (tmp_path / "line.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "figs" / "surface.svg").read_bytes()[:1000]
    assert plot_loss_line(line) == []  # no path: drawn and closed, nothing written
