"""Landscapes: critical points, their Hessians and kinds, minimisers, starts.

Covers: ``sgdlab.problems.landscapes``, ``sgdlab.problems.landscape_base``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.problems import build_problem
from sgdlab.rng import Streams
from sgdlab.theory import gibbs_basin_mass, piecewise_quadratic_gibbs_masses

ALL = [
    ("double_well", {}),
    ("double_well", {"dim": 2, "k": 3.0}),
    ("tilted_double_well", {"c": 0.5, "h": 2.0}),
    ("tilted_double_well", {"c": 3.0}),
    ("two_basin", {}),
    (
        "two_basin",
        {
            "depths": [1.0, 0.5, 2.0],
            "curvatures": [4.0, 1.0, 9.0],
            "centers": [-3.0, 0.0, 3.0],
            "confine": 0.1,
        },
    ),
    ("saddle", {}),
    ("rastrigin", {"dim": 1}),
    ("rastrigin", {"dim": 3, "A": 0.5, "extent": 1.2}),
    ("anharmonic", {"kappa": 2.0, "beta": 0.5}),
    ("anharmonic", {"dim": 2, "k": 3.0}),
    ("piecewise_two_basin", {}),
    ("piecewise_two_basin", {"dim": 2, "curvatures": [9.0, 2.0], "minima_values": [-0.3, 0.1],
                             "barrier": 0.8}),
]


@pytest.mark.parametrize(("name", "params"), ALL)
def test_critical_points_are_stationary_with_the_stated_hessian(name, params):
    p = build_problem(name, params)
    pts = p.critical_points()
    assert pts
    for c in pts:
        g = p.grad_F(c.w[None])[0]
        assert g.abs().max() < 1e-10 * max(1.0, c.hessian.abs().max().item())
        torch.testing.assert_close(c.hessian, p.hessian(c.w))
        assert c.value == pytest.approx(p.objective(c.w[None])[0].item(), abs=1e-15)
        ev = torch.linalg.eigvalsh(c.hessian)
        expected = {0: "minimum", p.dim: "maximum"}.get(int((ev < 0).sum()), "saddle")
        assert c.kind == expected and c.index == int((ev < 0).sum())
    assert all(c.kind == "minimum" for c in p.minima())
    assert p.f_star == min(c.value for c in p.minima())


def test_double_well_closed_forms():
    p = build_problem("double_well", {"h": 0.5, "dim": 2, "k": 2.0})
    assert [c.w.tolist() for c in p.critical_points()] == [[-1, 0], [0, 0], [1, 0]]
    assert [c.kind for c in p.critical_points()] == ["minimum", "saddle", "minimum"]
    assert torch.diagonal(p.critical_points()[0].hessian).tolist() == [4.0, 2.0]
    assert torch.diagonal(p.critical_points()[1].hessian).tolist() == [-2.0, 2.0]
    assert p.critical_points()[1].value == 0.5  # barrier height h
    assert p.w_star.tolist() == [1.0, 0.0] and p.f_star == 0.0
    assert p.init_params(None).tolist() == [-1.0, 0.0]  # default start: the left minimum
    assert build_problem("double_well", {}).critical_points()[1].kind == "maximum"


def test_tilted_double_well_roots_match_the_cubic():
    h, c = 1.5, 0.6
    p = build_problem("tilted_double_well", {"h": h, "c": c})
    roots = sorted(np.roots([4 * h, 0.0, -4 * h, c]).real)
    got = [float(cp.w[0]) for cp in p.critical_points()]
    np.testing.assert_allclose(got, roots, rtol=0, atol=1e-12)
    assert [cp.kind for cp in p.critical_points()] == ["minimum", "maximum", "minimum"]
    assert float(p.w_star[0]) == pytest.approx(roots[0])  # c > 0: the left well is lower
    assert float(p.init_params(None)[0]) == pytest.approx(roots[2])  # start: metastable one
    steep = build_problem("tilted_double_well", {"h": 1.0, "c": 8 / (3 * math.sqrt(3)) + 0.1})
    assert len(steep.critical_points()) == 1 and steep.critical_points()[0].kind == "minimum"


def test_two_basin_depths_and_curvatures():
    far = build_problem("two_basin", {"centers": [-10.0, 10.0], "depths": [2.0, 1.0]})
    sharp, flat = (far.minima()[0], far.minima()[1])
    assert float(sharp.w[0]) == pytest.approx(-10.0, abs=1e-12)
    assert sharp.value == pytest.approx(-2.0, abs=1e-12)
    assert float(sharp.hessian[0, 0]) == pytest.approx(20.0, rel=1e-10)
    assert float(flat.hessian[0, 0]) == pytest.approx(2.0, rel=1e-10)
    assert float(far.w_star[0]) == pytest.approx(-10.0, abs=1e-12)  # the deeper well
    # default wells overlap: exact minima shift a little from the centres
    near = build_problem("two_basin", {})
    mins = near.minima()
    assert len(mins) == 2 and [c.kind for c in near.critical_points()][1] == "maximum"
    assert abs(float(mins[0].w[0]) + 1.0) < 0.01 and abs(float(mins[1].w[0]) - 1.5) < 0.01
    assert float(mins[0].hessian[0, 0]) == pytest.approx(20.0, rel=0.01)
    assert float(mins[1].hessian[0, 0]) == pytest.approx(2.0, rel=0.01)
    torch.testing.assert_close(near.init_params(None), mins[0].w)  # starts in the sharp well


def test_saddle_geometry():
    p = build_problem("saddle", {"curvature_x": 2.0, "negative_curvature": 3.0, "minima_y": 0.5})
    s = p.critical_points()[1]
    assert s.kind == "saddle" and torch.diagonal(s.hessian).tolist() == [2.0, -3.0]
    for m in p.minima():
        assert m.value == pytest.approx(-3.0 * 0.25 / 4)
        assert torch.diagonal(m.hessian).tolist() == pytest.approx([2.0, 6.0])
    assert p.w_star.tolist() == [0.0, 0.5]
    assert p.init_params(None).tolist() == [0.0, 0.0]


def test_rastrigin_minimum_and_limits():
    p = build_problem("rastrigin", {"dim": 3})
    assert p.f_star == 0.0 and p.w_star.tolist() == [0.0, 0.0, 0.0]
    H = p.hessian(p.w_star)
    torch.testing.assert_close(H, (2 + 40 * math.pi**2) * torch.eye(3, dtype=torch.float64))
    assert p.objective(torch.zeros(1, 3, dtype=torch.float64)).item() == 0.0
    with pytest.raises(ValueError, match="extent"):
        p.critical_points()  # 21 roots per coordinate on [−5.12, 5.12]: 21³ points
    one = build_problem("rastrigin", {"dim": 1})
    assert len(one.minima()) == 11 and len(one.roots_1d()) == 21


def test_start_and_jitter():
    p = build_problem("double_well", {"dim": 2, "start": [0.5, -0.5], "init_scale": 0.1})
    assert p.init_params(None).tolist() == [0.5, -0.5]
    a = p.init_params(torch.Generator().manual_seed(0))
    assert not torch.equal(a, p.init_params(None)) and (a - p.init_params(None)).abs().max() < 1
    with pytest.raises(ConfigError, match=r"problem\.start"):
        build_problem("saddle", {"start": [1.0]})
    with pytest.raises(ConfigError, match=r"problem\.curvatures"):
        build_problem("two_basin", {"depths": [1.0], "curvatures": [1.0, 2.0]})


def test_population_noise_is_additive_and_isotropic():
    p = build_problem("tilted_double_well", {"dim": 2, "noise_std": 0.3}, Streams(0))
    x, y = p.sample(torch.Generator().manual_seed(0), 10)
    w = torch.tensor([[0.2, -0.1]], dtype=torch.float64)
    f = p.per_sample_loss(w, x[None], y[None])[0]
    torch.testing.assert_close(f, p.objective(w)[0] + x @ w[0])
    torch.testing.assert_close(p.grad_cov(w[0]), 0.09 * torch.eye(2, dtype=torch.float64))
    assert not p.finite and p.X is None


def test_anharmonic_quadratic_and_quartic():
    q = build_problem("anharmonic", {"kappa": 2.0})
    w = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    torch.testing.assert_close(q.objective(w), torch.tensor([0.25, 1.0], dtype=torch.float64))
    quartic = build_problem("anharmonic", {"kappa": 0.0, "beta": 1.0})
    (m,) = quartic.minima()
    assert m.kind == "degenerate" and m.w.tolist() == [0.0] and quartic.f_star == 0.0
    torch.testing.assert_close(quartic.grad_F(w), w**3)
    with pytest.raises(ConfigError, match=r"problem\.kappa"):
        build_problem("anharmonic", {"kappa": 0.0, "beta": 0.0})


def test_piecewise_two_basin_geometry_and_closed_form_gibbs_masses():
    """Two parabolas meeting at the cusp w₁ = 0 at the barrier level B; the closed-form basin
    masses equal an adaptive quadrature of the landscape's own U."""
    p = build_problem("piecewise_two_basin", {"curvatures": [16.0, 1.0],
                                              "minima_values": [-0.3, 0.0], "barrier": 0.5})
    sharp, flat = p.minima()
    assert float(sharp.hessian[0, 0]) == 16.0 and float(flat.hessian[0, 0]) == 1.0
    assert sharp.value == pytest.approx(-0.3, abs=1e-15) and flat.value == 0.0
    at0 = p.objective(torch.tensor([[-1e-300], [0.0]], dtype=torch.float64))
    torch.testing.assert_close(at0, torch.full((2,), 0.5, dtype=torch.float64))  # continuous
    g = p.grad_F(torch.tensor([[-1e-9], [1e-9]], dtype=torch.float64))[:, 0]
    assert g[0] > 0 > g[1]  # a cusp: U' jumps from κ_s|a_s| to −κ_f a_f
    torch.testing.assert_close(p.init_params(None), sharp.w)  # starts in the sharp basin
    assert p.w_star.tolist() == sharp.w.tolist()  # the deeper one
    def U(x: float) -> float:
        return float(p.objective(torch.tensor([[x]], dtype=torch.float64))[0])

    for T in (0.1, 0.4):
        closed = piecewise_quadratic_gibbs_masses(p.kappa, p.energies, p.centers, T)
        quad = gibbs_basin_mass(U, (0.0, 30.0), T, (-30.0, 30.0), breaks=[0.0])
        assert quad == pytest.approx(closed[1], rel=1e-9)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"barrier": -0.1}, "barrier"),
        ({"curvatures": [1.0]}, "curvatures"),
        ({"curvatures": [1.0, -2.0]}, "curvatures"),
        ({"minima_values": [0.0]}, "minima_values"),
    ],
)
def test_piecewise_two_basin_refuses_bad_parameters(params, match):
    with pytest.raises(ConfigError, match=match):
        build_problem("piecewise_two_basin", params)
