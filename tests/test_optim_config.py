"""per_chain expansion and the optimizer / schedule builders' validation errors.

Covers: ``sgdlab.optim.perchain``, ``sgdlab.optim.registry``.
"""

from __future__ import annotations

import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Cosine,
    InverseTime,
    Warmup,
    build_optimizer,
    build_schedule,
    per_chain,
)

F64 = torch.float64


def test_per_chain_scalar_and_groups() -> None:
    assert per_chain(0.5, 3, "x").tolist() == [0.5] * 3
    assert per_chain([1, 2], 6, "x").tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert per_chain((1.0, 2.0, 3.0), 3, "x").tolist() == [1.0, 2.0, 3.0]
    assert per_chain(torch.tensor([1.0, 2.0]), 4, "x").tolist() == [1.0, 1.0, 2.0, 2.0]
    t = per_chain([0.1], 4, "x", dtype=torch.float32)
    assert t.dtype == torch.float32 and t.shape == (4,)


@pytest.mark.parametrize(
    ("value", "kwargs", "needle"),
    [
        (
            [0.1, 0.2, 0.3],
            {},
            "3 values do not divide 64 chains: give 1, 2, 4, 8, 16, 32 or 64 values",
        ),
        ([], {}, "empty list"),
        (-0.1, {"positive": True}, "must be > 0, got -0.1"),
        ([0.1, -1.0], {"nonneg": True}, "must be >= 0, got -1.0"),
        (1.0, {"below": 1.0}, "must be < 1, got 1.0"),
        (float("nan"), {}, "must be finite"),
        ("abc", {}, "must be a number or a list of numbers"),
    ],
)
def test_per_chain_errors(value, kwargs, needle) -> None:
    with pytest.raises(ConfigError) as exc:
        per_chain(value, 64, "optimizer.lr", **kwargs)
    assert exc.value.field == "optimizer.lr"
    assert needle in exc.value.message


def test_divisor_hint_small_counts() -> None:
    with pytest.raises(ConfigError, match="give 1, 2, 3 or 6 values"):
        per_chain([1, 2, 3, 4], 6, "x")
    with pytest.raises(ConfigError, match=r"give 1, 2, 3, 4, 5, 6, \.\.\. or 360 values"):
        per_chain([1] * 7, 360, "x")


def test_build_optimizer_expands_lists() -> None:
    rule, lr0 = build_optimizer(
        {"name": "adam", "lr": [0.1, 0.2], "beta2": ["0.9", 0.99, 0.999, 0.9999]}, 8
    )
    assert lr0.tolist() == [0.1] * 4 + [0.2] * 4
    assert rule.beta2.tolist() == [0.9, 0.9, 0.99, 0.99, 0.999, 0.999, 0.9999, 0.9999]
    assert rule.beta1.tolist() == [0.9] * 8 and rule.eps.dtype == F64
    rule, _ = build_optimizer({"name": "rmsprop", "centered": True, "lr": "1e-3"}, 2)
    assert rule.centered is True


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"name": "momentun"}, "optimizer.name", "did you mean 'momentum'?"),
        ({"lr": 0.1}, "optimizer.name", "missing"),
        ({"name": "adam", "betta1": 0.9}, "optimizer.betta1", "did you mean 'beta1'?"),
        ({"name": "sgd", "lr": [0.1, 0.2, 0.3]}, "optimizer.lr", "3 values do not divide 4"),
        ({"name": "sgd", "lr": -0.1}, "optimizer.lr", "must be > 0, got -0.1"),
        ({"name": "momentum", "momentum": 1.0}, "optimizer.momentum", "must be < 1"),
        ({"name": "adam", "eps": 0.0}, "optimizer.eps", "must be > 0"),
        ({"name": "sgld", "lr": 0.1}, "optimizer.temperature", "required"),
        ({"name": "sgld", "temperature": -1.0}, "optimizer.temperature", ">= 0"),
        ({"name": "sgd", "lr": True}, "optimizer.lr", "number"),
        ({"name": "sgd", "lr": [0.1, "x"]}, "optimizer.lr", "number"),
    ],
)
def test_build_optimizer_errors(params, field, needle) -> None:
    with pytest.raises(ConfigError) as exc:
        build_optimizer(params, 4)
    assert exc.value.field == field, exc.value
    assert needle in exc.value.message, exc.value


def test_every_field_has_a_description() -> None:
    for registry in (OPTIMIZERS, SCHEDULES):
        for name, cls in registry.items():
            for key, info in cls.Params.model_fields.items():
                assert info.description, f"{name}.{key} has no description"


def test_build_schedule() -> None:
    assert build_schedule(None, 10)(5) == 1.0
    assert build_schedule({"name": "constant"}, 10)(5) == 1.0
    s = build_schedule({"name": "inverse_time", "k": 0.5}, 100)
    assert isinstance(s, InverseTime) and s(2) == 0.5
    c = build_schedule({"name": "cosine", "warmup": 10}, 110)
    assert isinstance(c, Warmup) and isinstance(c.base, Cosine) and c.base.horizon == 100
    assert c(9) == 1.0 and c(10) == 1.0 and c(110) == pytest.approx(0.0, abs=1e-15)
    assert build_schedule({"name": "cosine", "horizon": 7}, 110).horizon == 7


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"name": "cosin"}, "schedule.name", "did you mean 'cosine'?"),
        ({"name": "step", "step_size": 3, "gama": 0.5}, "schedule.gama", "did you mean 'gamma'?"),
        ({"name": "exponential", "gamma": 1.5}, "schedule.gamma", "less than or equal to 1"),
        ({"name": "step"}, "schedule.step_size", "required"),
        ({"name": "inverse_time", "k": 0.1, "warmup": -1}, "schedule.warmup", "greater"),
        ({"name": "cosine", "warmup": 10}, "schedule.warmup", "shorten the warmup"),
    ],
)
def test_build_schedule_errors(params, field, needle) -> None:
    with pytest.raises(ConfigError) as exc:
        build_schedule(params, 10)
    assert exc.value.field == field, exc.value
    assert needle in exc.value.message, exc.value
