"""Schedules: closed forms at many steps, input kinds, and torch's lr_scheduler sequences.

Covers: ``sgdlab.optim.schedule_base``, ``sgdlab.optim.schedules``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from sgdlab.optim import (
    BetaGamma,
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    Polynomial,
    Step,
    Warmup,
)

STEPS = np.arange(0, 3000, 7)

# schedule -> hand-written closed form of one step
CLOSED = [
    (Constant(), lambda t: 1.0),
    (InverseTime(k=0.01), lambda t: 1 / (1 + 0.01 * t)),
    (InverseTime(k=2.0), lambda t: 1 / (1 + 2.0 * t)),
    (InverseSqrt(), lambda t: 1 / math.sqrt(t + 1)),
    (Step(step_size=100, gamma=0.5), lambda t: 0.5 ** (t // 100)),
    (Exponential(gamma=0.999), lambda t: 0.999**t),
    (
        Cosine(horizon=1000, s_min=0.1),
        lambda t: 0.1 + 0.45 * (1 + math.cos(math.pi * min(t, 1000) / 1000)),
    ),
    (Cosine(horizon=500), lambda t: 0.5 * (1 + math.cos(math.pi * min(t, 500) / 500))),
    (Polynomial(power=0.75), lambda t: (1 + t) ** -0.75),
    (BetaGamma(gamma=50.0), lambda t: 50.0 / (50.0 + t)),
    (
        Warmup(InverseTime(k=0.1), 10),
        lambda t: (t + 1) / 10 if t < 10 else 1 / (1 + 0.1 * (t - 10)),
    ),
]
IDS = [s.formula() for s, _ in CLOSED]


@pytest.mark.parametrize(("schedule", "closed"), CLOSED, ids=IDS)
def test_closed_form_on_every_input_kind(schedule, closed) -> None:
    expected = np.array([closed(int(t)) for t in STEPS])
    ints = np.array([schedule(int(t)) for t in STEPS])
    assert all(isinstance(schedule(int(t)), float) for t in STEPS[:3])
    np.testing.assert_allclose(ints, expected, rtol=1e-13, atol=0)
    arr = schedule(STEPS)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.shape == STEPS.shape
    np.testing.assert_allclose(arr, expected, rtol=1e-13, atol=0)
    ten = schedule(torch.as_tensor(STEPS))
    assert isinstance(ten, torch.Tensor) and ten.dtype == torch.float64
    np.testing.assert_allclose(ten.numpy(), expected, rtol=1e-13, atol=0)
    assert isinstance(schedule(np.int64(3)), np.floating)
    if not isinstance(schedule, Warmup):
        assert schedule(0) == 1.0


def _torch_lrs(make, n: int) -> np.ndarray:
    """The lr sequence of a torch scheduler with base lr 1 (float64 Python floats)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], lr=1.0)
    sched = make(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


TORCH_EQUIVALENTS = [
    (Step(step_size=7, gamma=0.3), lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.3), 300),
    (Exponential(gamma=0.97), lambda o: lr_scheduler.ExponentialLR(o, gamma=0.97), 300),
    (
        Cosine(horizon=200, s_min=0.05),
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=200, eta_min=0.05),
        201,
    ),
    (Cosine(horizon=64), lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=64), 65),
    (
        InverseTime(k=0.3),
        lambda o: lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.3 * t)),
        300,
    ),
    (InverseSqrt(), lambda o: lr_scheduler.LambdaLR(o, lambda t: (t + 1) ** -0.5), 300),
    (Polynomial(power=0.6), lambda o: lr_scheduler.LambdaLR(o, lambda t: (1 + t) ** -0.6), 300),
    (BetaGamma(gamma=20.0), lambda o: lr_scheduler.LambdaLR(o, lambda t: 20 / (20 + t)), 300),
    (
        Warmup(Step(step_size=10, gamma=0.5), 5),
        lambda o: lr_scheduler.SequentialLR(
            o,
            [
                lr_scheduler.LinearLR(o, start_factor=1 / 5, end_factor=1.0, total_iters=4),
                lr_scheduler.StepLR(o, step_size=10, gamma=0.5),
            ],
            milestones=[5],
        ),
        100,
    ),
]


@pytest.mark.parametrize(
    ("schedule", "make", "n"), TORCH_EQUIVALENTS, ids=[s.formula() for s, _, _ in TORCH_EQUIVALENTS]
)
def test_matches_torch_lr_scheduler(schedule, make, n) -> None:
    np.testing.assert_allclose(schedule(np.arange(n)), _torch_lrs(make, n), rtol=1e-12, atol=1e-15)


def test_cosine_stays_at_s_min_after_horizon() -> None:
    s = Cosine(horizon=10, s_min=0.2)
    assert s(10) == pytest.approx(0.2, abs=1e-15) and s(10_000) == s(10)


def test_warmup_ramp_and_shift() -> None:
    s = Warmup(Exponential(gamma=0.5), 4)
    assert [s(t) for t in range(7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.25]
    assert s.tail() == Exponential(gamma=0.5).tail()
    with pytest.raises(ValueError):
        Warmup(Constant(), 0)


def test_tails() -> None:
    assert InverseSqrt().tail().power == 0.5
    assert Step(step_size=4, gamma=0.0625).tail().ratio == pytest.approx(0.5)
    assert Cosine(horizon=3).tail().eventually_zero
    assert Cosine(horizon=3, s_min=0.5).tail().eventually_constant == 0.5
    assert InverseTime(k=0.0).tail().eventually_constant == 1.0
    assert Polynomial(power=0.0).tail().eventually_constant == 1.0
