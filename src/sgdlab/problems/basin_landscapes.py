"""Landscapes with closed-form Gibbs laws: the anharmonic well and the piecewise two-basin.

Both are :class:`~sgdlab.problems.landscape_base._Profile` landscapes (per-sample loss
f(w; ξ) = U(w) + ξᵀw, ξ ~ N(0, σ²I); ``dim`` 1, or 2 with a confining ½k w₂²), registered
when :mod:`sgdlab.problems.landscapes` is imported.

* ``anharmonic``: U = ½κ w₁² + ¼β w₁⁴ (κ, β ≥ 0, not both 0). κ > 0, β = 0 is the quadratic
  (Gibbs law N(0, T/κ)); κ = 0 the pure quartic (a degenerate minimum at 0, listed as the
  minimum). One minimum at 0, so ‖w − w*‖ = |w₁| in 1-D.
* ``piecewise_two_basin``: two parabolas joined at a cusp at w₁ = 0,

      U(w₁) = ½κ_s (w₁ − a_s)² + E_s   for w₁ < 0     (the sharp basin, κ_s > κ_f usually)
      U(w₁) = ½κ_f (w₁ − a_f)² + E_f   for w₁ ≥ 0     (the flat basin)

  with a_s = −√(2(B − E_s)/κ_s) < 0 < a_f = √(2(B − E_f)/κ_f), so U is continuous with
  U(0) = B, the barrier level. Each basin is a half-line with a single parabola, so its Gibbs
  mass is closed-form (:func:`sgdlab.theory.basins.piecewise_quadratic_gibbs_masses`):
  Z_i = e^{−E_i/T} √(2πT/κ_i) Φ(|a_i|√(κ_i/T)) — unlike ``two_basin``, whose overlapping
  Gaussian wells have no closed form and no stationary law without confinement. U' jumps at
  the cusp (from κ_s|a_s| > 0 to −κ_f a_f < 0): a barrier with no curvature, so Kramers'
  formula does not apply there (the flat-minima study uses masses, not rates).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.problems.landscape_base import CriticalPoint, ProfileParams, _Profile
from sgdlab.problems.registry import register
from sgdlab.rng import Streams


class AnharmonicParams(ProfileParams):
    kappa: float = Field(1.0, ge=0, description="κ: quadratic coefficient, U = ½κw₁² + ¼βw₁⁴")
    beta: float = Field(0.0, ge=0, description="β: quartic coefficient (0: the quadratic)")


@register
class Anharmonic(_Profile):
    name = "anharmonic"
    Params = AnharmonicParams
    summary = "½κw₁² + ¼βw₁⁴ (+½k w₂²) + ξᵀw: quadratic (β=0) or quartic (κ=0) well at 0"

    def __init__(self, params: AnharmonicParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        if params.kappa == 0 and params.beta == 0:
            raise ConfigError("problem.kappa", "κ and β are both 0 (a flat line has no minimum): "
                              "set kappa > 0 or beta > 0")  # fmt: skip
        self.kappa, self.beta = float(params.kappa), float(params.beta)
        self._setup(params.dim)

    def u(self, t: Tensor) -> Tensor:
        return 0.5 * self.kappa * t * t + 0.25 * self.beta * t**4

    def du(self, t: Tensor) -> Tensor:
        return self.kappa * t + self.beta * t**3

    def d2u(self, t: Tensor) -> Tensor:
        return self.kappa + 3 * self.beta * t * t

    def roots(self) -> list[float]:
        return [0.0]

    def minima(self) -> list[CriticalPoint]:
        """The minimum at 0 (degenerate, U'' = 0, for the pure quartic)."""
        return self.critical_points()


class PiecewiseTwoBasinParams(ProfileParams):
    curvatures: list[float] = Field(
        [16.0, 1.0], description="[κ_s, κ_f]: curvatures of the left (sharp) and right (flat) basin"
    )
    minima_values: list[float] = Field([0.0, 0.0], description="[E_s, E_f]: U at the two minima")
    barrier: float = Field(1.0, description="B: U at the cusp w₁ = 0 (above both minima)")

    @model_validator(mode="after")
    def _check(self) -> PiecewiseTwoBasinParams:
        if len(self.curvatures) != 2 or min(self.curvatures) <= 0:
            raise ValueError("curvatures needs two positive values [κ_sharp, κ_flat]")
        if len(self.minima_values) != 2:
            raise ValueError("minima_values needs two values [E_sharp, E_flat]")
        if not self.barrier > max(self.minima_values):
            raise ValueError(
                f"barrier {self.barrier:g} must lie above both minima {self.minima_values} "
                "(else there is no barrier between the basins)"
            )
        return self


@register
class PiecewiseTwoBasin(_Profile):
    name = "piecewise_two_basin"
    Params = PiecewiseTwoBasinParams
    summary = "two parabolas (sharp left, flat right) meeting at a cusp at 0: closed-form Gibbs"

    def __init__(
        self, params: PiecewiseTwoBasinParams, streams: Streams, dtype: torch.dtype
    ) -> None:
        super().__init__(params, streams, dtype)
        (ks, kf), (es, ef), B = params.curvatures, params.minima_values, params.barrier
        self.kappa = (float(ks), float(kf))
        self.energies = (float(es), float(ef))
        self.barrier = float(B)
        self.centers = (-math.sqrt(2 * (B - es) / ks), math.sqrt(2 * (B - ef) / kf))
        self._setup(params.dim)

    def _pieces(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        left = t < 0

        def pick(pair: tuple[float, float]) -> Tensor:
            s, f = (torch.as_tensor(v, dtype=t.dtype, device=t.device) for v in pair)
            return torch.where(left, s, f)

        return left, pick(self.kappa), pick(self.centers), pick(self.energies)

    def u(self, t: Tensor) -> Tensor:
        _, k, a, e = self._pieces(t)
        return 0.5 * k * (t - a) ** 2 + e

    def du(self, t: Tensor) -> Tensor:
        _, k, a, _ = self._pieces(t)
        return k * (t - a)

    def d2u(self, t: Tensor) -> Tensor:
        """κ_s for w₁ < 0, κ_f for w₁ ≥ 0 (U'' is undefined at the cusp itself)."""
        return self._pieces(t)[1]

    def roots(self) -> list[float]:
        return [self.centers[0], self.centers[1]]

    def default_start(self) -> Tensor:
        """The sharp basin's minimum."""
        return self.minima()[0].w
