"""theory.rates: exact moments against simulation; the uniform-average bound holds."""

import numpy as np
import torch

from sgdlab.lab.executor import run_config
from sgdlab.theory.rates import (
    expected_suboptimality_averaged_quadratic,
    quadratic_moments,
    uniform_average_bound,
)


def test_moments_match_simulation():
    lam = np.array([1.0, 0.3])
    T = 60
    etas = 0.4 / np.sqrt(np.arange(T) + 1.0)
    e0 = np.array([1.0, -1.0]) / np.sqrt(2)
    dist2, grad2 = quadratic_moments(lam, 1.0, 2, e0, etas)
    res = run_config({"problem": {"name": "quadratic", "eigenvalues": lam.tolist(),
                                  "init_scale": 1.0, "w_star": 0.0},
                      "optimizer": {"name": "sgd", "lr": 0.4}, "schedule": {"name": "inverse_sqrt"},
                      "batch": {"size": 2, "sampling": "stream"}, "chains": 2000, "steps": T,
                      "streams": {"off": ["init"]}, "record": {"every": 20}, "dtype": "float64"})
    steps, d = res.metric("dist_to_opt")
    sim = (d**2).mean(0)
    se = (d**2).std(0) / np.sqrt(d.shape[0])
    assert np.all(np.abs(sim - dist2[steps]) < 4 * se + 1e-12)
    _, gn = res.metric("grad_norm")
    sim_g = (gn**2).mean(0)
    se_g = (gn**2).std(0) / np.sqrt(gn.shape[0])
    assert np.all(np.abs(sim_g - grad2[steps[steps < T]]) < 4 * se_g[: (steps < T).sum()] + 1e-12)


def test_uniform_average_bound_dominates_exact():
    lam = np.array([1.0, 0.1, 0.0])
    for T in (10, 100, 1000):
        etas = 0.5 / np.sqrt(np.arange(T) + 1.0)
        e0 = np.array([1.0, 1.0, 1.0])
        dist2, grad2 = quadratic_moments(lam, 1.0, 1, e0, etas)
        exact = expected_suboptimality_averaged_quadratic(lam, 1.0, 1, e0, etas, weights=np.ones(T))
        assert exact <= uniform_average_bound(etas, dist2[:T].max(), grad2[:T])


def test_bound_rejects_increasing_steps():
    import pytest

    with pytest.raises(ValueError):
        uniform_average_bound([0.1, 0.2], 1.0, 1.0)
    assert torch.get_num_threads() >= 1
