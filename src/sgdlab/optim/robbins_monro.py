"""The Robbins–Monro conditions Σ η_t = ∞ and Σ η_t² < ∞, decided analytically.

With η_t = lr0 · s(t) and lr0 > 0 the conditions are those of the schedule s. They are decided
from the schedule's closed-form tail (:meth:`~sgdlab.optim.Schedule.tail`),
s(t) ≍ t^(−p) r^t, by the standard series tests (comparison with p-series and geometric
series):

    Σ_t t^(−pq) r^(qt) < ∞   ⇔   r < 1,  or  r = 1 and p·q > 1        (q = 1, 2)

An eventually-zero schedule (cosine to 0 over a finite horizon) has finite sums; an eventually
constant c > 0 has both sums infinite. Warmup changes finitely many terms, never the verdict.

Examples: 1/(1+kt) satisfies both; 1/√(t+1) does not (Σ s² is harmonic); a constant fails
Σ s² < ∞; step and exponential decay fail Σ s = ∞; (1+t)^(−p) satisfies both iff p ∈ (1/2, 1].

Reference: Robbins & Monro (1951), *A stochastic approximation method*, conditions (6)–(7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sgdlab.optim.schedule_base import Tail

__all__ = ["RobbinsMonroResult", "robbins_monro"]


@dataclass(frozen=True)
class RobbinsMonroResult:
    """Verdict of :func:`robbins_monro`.

    Attributes:
        sum_diverges: Σ_t s(t) = ∞ (the iterates can travel any distance).
        sum_sq_converges: Σ_t s(t)² < ∞ (the accumulated noise variance is finite).
        satisfied: both conditions hold.
        explanation: one line per condition with the series test used.
    """

    sum_diverges: bool
    sum_sq_converges: bool
    satisfied: bool
    explanation: str


def _series(power: float, ratio: float, q: int) -> tuple[bool, str]:
    """Whether Σ t^(−power·q) ratio^(q·t) converges, and why."""
    p, r = power * q, ratio**q
    term = f"t^(−{p:g})" if r == 1.0 else f"t^(−{p:g})·{r:.6g}^t" if p else f"{r:.6g}^t"
    if r < 1.0:
        return True, f"Σ {term} converges (geometric, ratio {r:.6g} < 1)"
    if r > 1.0:
        return False, f"Σ {term} diverges (geometric, ratio {r:.6g} > 1)"
    if p > 1.0:
        return True, f"Σ {term} converges (p-series, exponent {p:g} > 1)"
    why = "harmonic" if p == 1.0 else f"p-series, exponent {p:g} <= 1"
    return False, f"Σ {term} diverges ({why})"


def robbins_monro(schedule: Any) -> RobbinsMonroResult:
    """Decide Σ s(t) = ∞ and Σ s(t)² < ∞ analytically from the schedule's tail.

    Args:
        schedule: a :class:`~sgdlab.optim.Schedule` (anything with ``tail() -> Tail``) or a
            :class:`~sgdlab.optim.Tail`.

    Returns:
        :class:`RobbinsMonroResult`; ``explanation`` names the series test behind each answer.

    Example:
        >>> from sgdlab.optim import InverseSqrt
        >>> r = robbins_monro(InverseSqrt())
        >>> r.sum_diverges, r.sum_sq_converges
        (True, False)
    """
    if isinstance(schedule, Tail):
        tail = schedule
    elif hasattr(schedule, "tail"):
        tail = schedule.tail()
    else:
        raise TypeError(f"{schedule!r} has no closed-form tail: give a built-in schedule or a Tail")
    name = schedule.formula() if hasattr(schedule, "formula") else "s(t)"
    if tail.eventually_constant is not None:
        c = tail.eventually_constant
        if c == 0.0:
            lines = (
                "Σ s finite: s(t) = 0 after a finite horizon",
                "Σ s² finite: s(t) = 0 after a finite horizon",
            )
            diverges, sq_converges = False, True
        else:
            lines = (
                f"Σ s diverges: s(t) = {c:g} > 0 for all large t",
                f"Σ s² diverges: s(t)² = {c * c:g} > 0 for all large t",
            )
            diverges, sq_converges = True, False
    else:
        conv1, why1 = _series(tail.power, tail.ratio, 1)
        conv2, why2 = _series(tail.power, tail.ratio, 2)
        diverges, sq_converges = not conv1, conv2
        lines = (f"Σ s: {why1}", f"Σ s²: {why2}")
    satisfied = diverges and sq_converges
    verdict = "satisfied" if satisfied else "NOT satisfied"
    explanation = f"s(t) = {name}: Robbins–Monro {verdict}. " + "; ".join(lines)
    return RobbinsMonroResult(diverges, sq_converges, satisfied, explanation)
