"""Gibbs basin masses, Kramers' escape time, the Arrhenius slope, the SDE's exact MFPT.

Covers: ``sgdlab.theory.basins`` and the quadrature of ``theory.langevin.mean_first_passage_time``
(each against an independent second computation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from sgdlab.errors import ConfigError
from sgdlab.theory import (
    arrhenius_slope,
    gibbs_basin_mass,
    gibbs_density,
    kramers_escape_time,
    kramers_rate,
    laplace_occupancy_ratio,
    mean_first_passage_time,
    piecewise_quadratic_gibbs_masses,
)

KS, KF = 16.0, 1.0


def _piecewise(es: float, ef: float, B: float):
    a = (-math.sqrt(2 * (B - es) / KS), math.sqrt(2 * (B - ef) / KF))

    def U(x: float) -> float:
        return 0.5 * KS * (x - a[0]) ** 2 + es if x < 0 else 0.5 * KF * (x - a[1]) ** 2 + ef

    return a, U


@pytest.mark.parametrize("es", [0.0, -0.3])
@pytest.mark.parametrize("T", [0.05, 0.3, 1.5])
def test_piecewise_closed_form_equals_adaptive_quadrature(es, T):
    a, U = _piecewise(es, 0.0, 1.0)
    p = piecewise_quadratic_gibbs_masses([KS, KF], [es, 0.0], a, T)
    assert p.sum() == pytest.approx(1.0, abs=1e-15)
    q = gibbs_basin_mass(U, (0.0, 40.0), T, (-40.0, 40.0), breaks=[0.0])
    assert q == pytest.approx(p[1], rel=1e-9)


def test_piecewise_masses_tend_to_laplace_and_equal_depths_are_exact():
    """Equal depths and one barrier level: |a_i|√κ_i = √(2(B − E)) for both basins, so the Φ
    factors cancel and p_f/p_s = √(κ_s/κ_f) at every T; with unequal depths the ratio tends
    to Laplace's as T → 0."""
    a, _ = _piecewise(0.0, 0.0, 1.0)
    for T in (0.01, 0.5, 3.0):
        p = piecewise_quadratic_gibbs_masses([KS, KF], [0, 0], a, T)
        assert p[1] / p[0] == pytest.approx(math.sqrt(KS / KF), rel=1e-12)
    a, _ = _piecewise(-0.3, 0.0, 1.0)
    prev = None
    for T in (0.2, 0.1, 0.05):
        p = piecewise_quadratic_gibbs_masses([KS, KF], [-0.3, 0.0], a, T)
        lap = laplace_occupancy_ratio(0.0, KF, -0.3, KS, T)
        err = abs(p[1] / p[0] / lap - 1)
        assert prev is None or err < prev
        prev = err
    assert prev < 1e-6


def test_gibbs_basin_mass_agrees_with_the_grid_density_and_refuses_bad_input():
    def U(x):
        return (x * x - 1) ** 2 + 0.25 * x

    T = 0.3
    g = gibbs_density(U, np.linspace(-3, 3, 60001), T)
    assert gibbs_basin_mass(U, (0.0627, 3.0), T, (-3.0, 3.0)) == pytest.approx(
        g.mass((0.0627, 3.0)), rel=1e-8)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^T: "):
        gibbs_basin_mass(U, (0, 1), 0.0, (-3, 3))
    with pytest.raises(ConfigError, match=r"^domain: .*does not cover"):
        gibbs_basin_mass(U, (0, 1), T, (-1.2, 1.2))
    with pytest.raises(ConfigError, match=r"^basin: "):
        gibbs_basin_mass(U, (0, 4), T, (-3, 3))


def test_kramers_time_and_its_refusals():
    assert kramers_escape_time(2.0, -1.0, 0.25, 0.05) == pytest.approx(
        1 / kramers_rate(2.0, -1.0, 0.25, 0.05), rel=1e-14)  # fmt: skip
    for kw, field in (
        ({"barrier": -0.1}, "barrier"),
        ({"curv_min": -1.0}, "curv_min"),
        ({"curv_saddle": 1.0}, "curv_saddle"),
        ({"T": -1.0}, "T"),
    ):
        args = {"curv_min": 2.0, "curv_saddle": -1.0, "barrier": 0.25, "T": 0.1, **kw}
        with pytest.raises(ConfigError, match=f"^{field}: "):
            kramers_escape_time(**args)


def test_arrhenius_slope():
    T = np.array([0.2, 0.3, 0.5])
    assert arrhenius_slope(T, 2.0 * np.exp(0.9 / T)) == pytest.approx(0.9, rel=1e-12)
    with pytest.raises(ConfigError, match=r"^times: "):
        arrhenius_slope(T, [1.0, -1.0, 2.0])
    with pytest.raises(ConfigError, match=r"^temperatures: "):
        arrhenius_slope([0.1], [1.0])


def test_sde_mfpt_against_a_second_quadrature():
    """The trapezoid MFPT against nested adaptive quadrature of
    τ = (1/T) ∫_target^x0 e^{U(y)/T} ∫_y^reflect e^{−U(z)/T} dz dy (mirror image, x0 > target)."""

    def U(x):
        return (x * x - 1) ** 2 + 0.25 * x

    T, x0, target, reflect = 0.35, 0.967, -0.48, 3.0
    fast = mean_first_passage_time(U, x0, target, T, reflect=reflect, n_grid=40001)

    def inner(y):
        return integrate.quad(lambda z: math.exp(-U(z) / T), y, reflect, epsrel=1e-12)[0]

    slow = integrate.quad(lambda y: math.exp(U(y) / T) * inner(y), target, x0,
                          epsrel=1e-10, limit=200)[0] / T  # fmt: skip
    assert fast == pytest.approx(slow, rel=1e-7)
    with pytest.raises(ConfigError, match=r"^T: "):
        mean_first_passage_time(U, x0, target, 0.0, reflect=reflect)
