"""Hutchinson trace (standard error, coverage, stopping) and stochastic Lanczos quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from sgdlab.measure.curvature.eigs import random_unit_vector
from sgdlab.measure.curvature.hvp import hessian_matrix
from sgdlab.measure.curvature.spectrum import spectral_density
from sgdlab.measure.curvature.trace import hessian_trace, rademacher
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


@pytest.fixture(scope="module")
def model_hessian() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64))
    x = torch.randn(48, 5, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (48,), generator=gen)
    return net, x, y, hessian_matrix(net, LOSS, x, y)


def test_rademacher_probes() -> None:
    z = rademacher(10_000, torch.Generator().manual_seed(0))
    assert set(z.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(z.mean())) < 4 / math.sqrt(10_000)


def test_model_trace_within_its_standard_error(model_hessian) -> None:
    net, x, y, H = model_hessian
    exact = float(torch.trace(H))
    res = hessian_trace(
        net, LOSS, x, y, rel_se=None, max_probes=60, generator=torch.Generator().manual_seed(0)
    )
    assert res.n_probes == res.n_hvp == 60 and not res.converged
    assert res.stderr == pytest.approx(np.std(res.samples, ddof=1) / math.sqrt(60))
    assert abs(res.estimate - exact) <= 4 * res.stderr


def test_interval_coverage_over_seeds(model_hessian) -> None:
    """The 95% interval covers tr H in 95% of 200 seeds, within a binomial tolerance."""
    *_, H = model_hessian
    exact = float(torch.trace(H))
    n_seeds, level = 200, 0.95
    covered = 0
    for seed in range(n_seeds):
        res = hessian_trace(
            H, rel_se=None, max_probes=30, generator=torch.Generator().manual_seed(seed)
        )
        lo, hi = res.confidence_interval(level)
        covered += lo <= exact <= hi
    lo_ok = stats.binom.ppf(0.001, n_seeds, level)  # two-sided 0.2% binomial band
    hi_ok = stats.binom.ppf(0.999, n_seeds, level)
    assert lo_ok <= covered <= hi_ok, covered


def test_probe_variance_matches_closed_form(model_hessian) -> None:
    *_, H = model_hessian
    res = hessian_trace(H, rel_se=None, max_probes=4000, generator=torch.Generator().manual_seed(1))
    var_exact = 2 * float((H**2).sum() - (torch.diagonal(H) ** 2).sum())
    s = res.samples
    var = np.var(s, ddof=1)
    se_var = math.sqrt((np.mean((s - s.mean()) ** 4) - var**2) / len(s))
    assert abs(var - var_exact) <= 4 * se_var


def test_stopping_rule() -> None:
    p = Quadratic(QuadraticParams(dim=30, rotate=True, L=10.0, mu=0.1), Streams(0), F64)
    A = p.hessian(p.w_star)
    res = hessian_trace(A, rel_se=0.02, max_probes=5000, generator=torch.Generator().manual_seed(0))
    assert res.converged and res.n_probes >= 10
    assert res.stderr <= 0.02 * abs(res.estimate)
    assert abs(res.estimate - float(torch.trace(A))) <= 4 * res.stderr
    capped = hessian_trace(
        A, rel_se=1e-9, max_probes=25, generator=torch.Generator().manual_seed(0)
    )
    assert capped.n_probes == 25 and not capped.converged


def test_quadratic_trace_closed_form() -> None:
    # diagonal A: every Rademacher probe gives zᵀAz = tr A exactly (zero variance)
    p = Quadratic(QuadraticParams(dim=8), Streams(0), F64)
    model, loss_fn = p.to_module(p.init_params(None))
    xi, dummy = p.sample(torch.Generator().manual_seed(0), 10)
    res = hessian_trace(model, loss_fn, xi, dummy, generator=torch.Generator().manual_seed(0))
    assert res.estimate == pytest.approx(float(p.eigenvalues.sum()), rel=1e-12)
    assert res.stderr == pytest.approx(0.0, abs=1e-12) and res.converged


def test_slq_quadrature_is_exact_for_low_degree_polynomials(model_hessian) -> None:
    *_, H = model_hessian
    m = 5
    sd = spectral_density(H, n_runs=2, n_iter=m, generator=torch.Generator().manual_seed(7))
    assert sd.n_hvp == 2 * m and sd.nodes.shape == (2, m)
    gen = torch.Generator().manual_seed(7)
    for run in range(2):
        v = random_unit_vector(H.shape[0], F64, torch.device("cpu"), gen)
        Hp_v = v.clone()
        for p in range(1, 2 * m):
            Hp_v = H @ Hp_v
            quad = float(np.sum(sd.weights[run] * sd.nodes[run] ** p))
            assert quad == pytest.approx(float(v @ Hp_v), rel=1e-8, abs=1e-10)
    np.testing.assert_allclose(sd.weights.sum(axis=1), 1.0, rtol=1e-12)


def test_slq_density_and_trace_on_quadratic() -> None:
    lam = [0.5] * 10 + [2.0] * 10 + [9.0] * 4
    p = Quadratic(QuadraticParams(eigenvalues=lam, rotate=True), Streams(0), F64)
    A = p.hessian(p.w_star)
    sd = spectral_density(
        A, n_runs=40, n_iter=24, sigma=0.1, generator=torch.Generator().manual_seed(0)
    )
    # a full Krylov space has only the 3 distinct eigenvalues as nodes with weight
    nodes = sd.nodes[sd.weights > 1e-12]
    assert set(np.round(nodes, 8)) <= {0.5, 2.0, 9.0}
    area = float(np.sum(0.5 * (sd.density[1:] + sd.density[:-1]) * np.diff(sd.grid)))
    assert area == pytest.approx(1.0, abs=1e-6)
    # mass near each eigenvalue ≈ its multiplicity / d, within the SE over runs
    per_run = np.array([[w[np.isclose(n, e)].sum() for e in (0.5, 2.0, 9.0)]
                        for n, w in zip(sd.nodes, sd.weights, strict=True)])  # fmt: skip
    se = per_run.std(axis=0, ddof=1) / math.sqrt(len(per_run))
    assert np.all(np.abs(per_run.mean(axis=0) - np.array([10, 10, 4]) / 24) <= 4 * se)
    traces = 24 * (sd.weights * sd.nodes).sum(axis=1)
    assert abs(sd.trace - sum(lam)) <= 4 * traces.std(ddof=1) / math.sqrt(len(traces))
    peaks = sd.grid[1:-1][
        (sd.density[1:-1] > sd.density[:-2]) & (sd.density[1:-1] > sd.density[2:])
    ]
    np.testing.assert_allclose(np.sort(peaks), [0.5, 2.0, 9.0], atol=0.02)
