"""One temperature convention everywhere: theory, the model instrument and the engine probe
all give T = η/(1−m) · κ · tr Σ / (2 b d) (overdamped Langevin dw = −∇F dt + √(2T) dW)."""

import math

import torch

from sgdlab.engine.noise_probe import noise_statistics
from sgdlab.measure import temperature
from sgdlab.problems import build_problem
from sgdlab.rng import Streams
from sgdlab.theory import sgd_temperature


def test_instrument_equals_theory():
    for lr, b, tr, d, m in [
        (0.1, 8, 3.0, 5, 0.0),
        (0.03, 32, 10.0, 100, 0.9),
        (1.0, 1, 2.0, 2, 0.5),
    ]:
        assert math.isclose(
            temperature(lr, b, tr, momentum=m, dim=d),
            sgd_temperature(lr, tr, b, d, momentum=m),
            rel_tol=1e-14,
        )


def test_engine_probe_equals_theory():
    p = build_problem("quadratic", {"dim": 3}, Streams(0))
    g = torch.Generator().manual_seed(0)
    W = torch.randn(2, 3, generator=g, dtype=torch.float64)
    x, y = p.sample(g, 16)
    stats = noise_statistics(
        p,
        W,
        x.reshape(2, 8, 3),
        y.reshape(2, 8),
        torch.tensor([0.1, 0.2], dtype=torch.float64),
        momentum=0.5,
    )
    for k, lr in enumerate((0.1, 0.2)):
        expected = sgd_temperature(lr, float(stats["noise_trace"][k]), 8, 3, momentum=0.5)
        assert math.isclose(float(stats["noise_temperature"][k]), expected, rel_tol=1e-12)
