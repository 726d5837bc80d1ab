"""Robbins–Monro: analytic verdicts for every built-in, cross-checked with partial sums."""

from __future__ import annotations

import numpy as np
import pytest

from sgdlab.optim import (
    SCHEDULES,
    BetaGamma,
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    Polynomial,
    Step,
    Tail,
    Warmup,
    robbins_monro,
)

# (schedule, Σ s diverges, Σ s² converges)
VERDICTS = [
    (Constant(), True, False),
    (InverseTime(k=0.01), True, True),
    (InverseTime(k=1.0), True, True),
    (InverseTime(k=10.0), True, True),
    (InverseTime(k=0.0), True, False),
    (InverseSqrt(), True, False),
    (Step(step_size=10, gamma=0.5), False, True),
    (Step(step_size=1000, gamma=0.99), False, True),
    (Step(step_size=10, gamma=1.0), True, False),
    (Exponential(gamma=0.999), False, True),
    (Exponential(gamma=0.5), False, True),
    (Exponential(gamma=1.0), True, False),
    (Cosine(horizon=100, s_min=0.1), True, False),
    (Cosine(horizon=100, s_min=1.0), True, False),
    (Cosine(horizon=100), False, True),
    (Polynomial(power=0.0), True, False),
    (Polynomial(power=0.3), True, False),
    (Polynomial(power=0.5), True, False),
    (Polynomial(power=0.51), True, True),
    (Polynomial(power=0.75), True, True),
    (Polynomial(power=1.0), True, True),
    (Polynomial(power=1.01), False, True),
    (Polynomial(power=2.0), False, True),
    (BetaGamma(gamma=1.0), True, True),
    (BetaGamma(gamma=100.0), True, True),
]


@pytest.mark.parametrize("warmup", [0, 7])
@pytest.mark.parametrize(("schedule", "diverges", "sq_converges"), VERDICTS)
def test_verdicts(schedule, diverges, sq_converges, warmup) -> None:
    s = Warmup(schedule, warmup) if warmup else schedule
    r = robbins_monro(s)
    assert (r.sum_diverges, r.sum_sq_converges) == (diverges, sq_converges), r.explanation
    assert r.satisfied == (diverges and sq_converges)
    assert ("NOT satisfied" in r.explanation) != r.satisfied


def test_every_builtin_is_covered() -> None:
    assert {type(s).name for s, _, _ in VERDICTS} == set(SCHEDULES)


def test_explanations_name_the_test() -> None:
    assert "harmonic" in robbins_monro(InverseSqrt()).explanation
    assert "geometric" in robbins_monro(Exponential(gamma=0.9)).explanation
    assert "finite horizon" in robbins_monro(Cosine(horizon=10)).explanation


def test_tail_directly_and_growth() -> None:
    r = robbins_monro(Tail(power=2.0, ratio=1.01))
    assert r.sum_diverges and not r.sum_sq_converges
    r = robbins_monro(Tail(eventually_zero=True))
    assert not r.sum_diverges and r.sum_sq_converges
    with pytest.raises(TypeError, match="no closed-form tail"):
        robbins_monro(lambda t: 1.0)


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(),
        InverseTime(k=1.0),
        InverseSqrt(),
        Polynomial(power=0.75),
        Polynomial(power=1.5),
        Exponential(gamma=0.999),
        Step(step_size=100, gamma=0.5),
        Cosine(horizon=1000),
        Cosine(horizon=1000, s_min=0.1),
    ],
    ids=lambda s: s.formula(),
)
def test_numeric_partial_sums_agree(schedule) -> None:
    """Σ from 10⁴ to 10⁶: a divergent series adds >= ln(100)/2 ≈ 2.3 (its slowest case, the
    harmonic one, adds ln 100 ≈ 4.6); a convergent one adds < 0.1 (at most ≈ 0.04 here)."""
    s = schedule(np.arange(10**4, 10**6, dtype=np.float64))
    r = robbins_monro(schedule)
    for increment, diverges in ((s.sum(), r.sum_diverges), ((s * s).sum(), not r.sum_sq_converges)):
        if diverges:
            assert increment > 2.3
        else:
            assert increment < 0.1
