"""The vectorized engine: exact iterates, chain independence, reproducibility, divergence.

Covers: ``sgdlab.engine.plan``, ``sgdlab.engine.loop``, ``sgdlab.engine.probes``,
``sgdlab.engine.recorder``, ``sgdlab.engine.result``, ``sgdlab.api``.
"""

import numpy as np
import pytest
import torch

import sgdlab
from sgdlab.engine import prepare


def quad_cfg(**over):
    cfg = {
        "problem": {"name": "quadratic", "dim": 4, "mu": 0.2, "L": 2.0, "noise_std": 1.0},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "batch": {"size": 4, "sampling": "stream"},
        "chains": 6,
        "steps": 60,
        "seed": 3,
        "dtype": "float64",
        "record": {"every": 5},
    }
    cfg.update(over)
    return cfg


def test_zero_noise_sgd_equals_analytic_iterates():
    cfg = quad_cfg(problem={"name": "quadratic", "dim": 4, "mu": 0.2, "L": 2.0,
                            "noise_std": 0.0, "rotate": True})
    plan = prepare(cfg)
    p = plan.problem
    res = sgdlab.run(cfg)
    w0 = torch.stack([p.init_params(g) for g in plan.streams.generators("init", 6)])
    M = torch.linalg.matrix_power(torch.eye(4, dtype=torch.float64) - 0.1 * p.A, 60)
    expected = p.w_star + (w0 - p.w_star) @ M.T
    torch.testing.assert_close(res.final_params, expected, rtol=1e-12, atol=1e-12)
    steps, dist = res.metric("dist_to_opt")
    for j, t in enumerate(steps):
        Mt = torch.linalg.matrix_power(torch.eye(4, dtype=torch.float64) - 0.1 * p.A, int(t))
        ref = torch.linalg.vector_norm((w0 - p.w_star) @ Mt.T, dim=1)
        np.testing.assert_allclose(dist[:, j], ref.numpy(), rtol=1e-12)


def test_same_config_and_seed_bit_identical():
    a, b = sgdlab.run(quad_cfg()), sgdlab.run(quad_cfg())
    for name in a.metric_names():
        assert np.array_equal(a.metric(name)[1], b.metric(name)[1], equal_nan=True)
    assert torch.equal(a.final_params, b.final_params)
    c = sgdlab.run(quad_cfg(seed=4))
    assert not torch.equal(a.final_params, c.final_params)


@pytest.mark.parametrize("sampling", ["stream", "with_replacement", "without_replacement"])
def test_chain_k_equals_same_chain_run_alone(sampling):
    prob = {"name": "quadratic", "dim": 3, "n": 50} if sampling != "stream" else {
        "name": "quadratic", "dim": 3}
    ens = sgdlab.run(quad_cfg(problem=prob, batch={"size": 5, "sampling": sampling}))
    for k in (0, 4):
        alone = sgdlab.run(quad_cfg(problem=prob, batch={"size": 5, "sampling": sampling},
                                    chains=1, first_chain=k))
        assert torch.equal(ens.final_params[k], alone.final_params[0])
        assert np.array_equal(ens.metric("loss")[1][k], alone.metric("loss")[1][0])


@pytest.mark.parametrize("sampling", ["without_replacement", "full"])
@pytest.mark.parametrize(
    "problem",
    [
        {"name": "logistic_regression", "dataset": "iris"},
        {"name": "mlp", "dataset": "iris", "widths": [8]},
    ],
    ids=["logistic", "mlp"],
)
def test_classifier_chain_k_alone_is_bit_identical_in_float64(problem, sampling):
    """Every metric of chain k (objective included) and its trajectory, alone or among 5."""
    cfg = {
        "problem": problem, "optimizer": {"name": "sgd", "lr": 0.1},
        "batch": {"size": 8, "sampling": sampling}, "chains": 5, "steps": 30,
        "dtype": "float64", "record": {"every": 10},
    }  # fmt: skip
    ens = sgdlab.run(cfg)
    for k in (0, 3):
        alone = sgdlab.run({**cfg, "chains": 1, "first_chain": k})
        assert torch.equal(ens.final_params[k], alone.final_params[0])
        for name in ens.metrics:
            assert np.array_equal(ens.metric(name)[1][k], alone.metric(name)[1][0]), name


def test_per_chain_learning_rates():
    sweep = sgdlab.run(quad_cfg(optimizer={"name": "sgd", "lr": [0.05, 0.2]}, chains=4))
    _, lr = sweep.metric("lr")
    assert np.allclose(lr[:2], 0.05) and np.allclose(lr[2:], 0.2)
    single = sgdlab.run(quad_cfg(optimizer={"name": "sgd", "lr": 0.2}, chains=4))
    assert torch.equal(sweep.final_params[2:], single.final_params[2:])
    assert not torch.equal(sweep.final_params[:2], single.final_params[:2])


def test_divergence_of_one_chain_leaves_others_untouched():
    # L = 2, so any lr > 1 diverges; chain 1 gets lr = 5
    bad = sgdlab.run(quad_cfg(optimizer={"name": "sgd", "lr": [0.1, 5.0, 0.1]}, chains=3,
                              steps=3000, record={"every": 100}))
    good = sgdlab.run(quad_cfg(optimizer={"name": "sgd", "lr": 0.1}, chains=3, steps=3000,
                               record={"every": 100}))
    assert bad.diverged.tolist() == [False, True, False]
    t_div = int(bad.diverged_at[1])
    assert 0 < t_div < 3000
    assert torch.isfinite(bad.final_params).all()
    assert torch.equal(bad.final_params[[0, 2]], good.final_params[[0, 2]])
    steps, sub = bad.metric("suboptimality")
    assert np.isnan(sub[1, steps > t_div]).all() and np.isfinite(sub[[0, 2]]).all()


def test_polyak_average_is_the_exact_mean_of_the_iterates():
    """Full-batch GD on the quadratic has analytic iterates w_t = w* + M^t (w0 − w*), M = I − ηA;
    the recorded average over average_start ≤ t ≤ T must be their exact mean."""
    prob = {"name": "quadratic", "dim": 3, "n": 20, "rotate": True}
    cfg = quad_cfg(problem=prob, batch={"sampling": "full"}, steps=40, chains=2,
                   record={"every": 10, "average": True, "average_start": 5})
    plan = prepare(cfg)
    p = plan.problem
    res = sgdlab.run(cfg)
    w0 = torch.stack([p.init_params(g) for g in plan.streams.generators("init", 2)])
    M = torch.eye(3, dtype=torch.float64) - 0.1 * p.A
    iterates = [p.w_star + (w0 - p.w_star) @ torch.linalg.matrix_power(M, t).T
                for t in range(5, 41)]
    torch.testing.assert_close(res.average_params, torch.stack(iterates).mean(0),
                               rtol=1e-10, atol=1e-12)
    steps, avg = res.metric("avg_objective")
    assert steps.tolist() == [10, 20, 30, 40]
    np.testing.assert_allclose(avg[:, -1], p.objective(res.average_params).numpy(), rtol=1e-12)


def test_average_start_after_the_last_step_is_an_error():
    with pytest.raises(sgdlab.ConfigError) as e:
        sgdlab.run(quad_cfg(steps=10, record={"average": True, "average_start": 50}))
    assert e.value.field == "record.average_start"


def test_population_problem_defaults_to_stream_sampling():
    res = sgdlab.run({"problem": {"name": "quadratic", "dim": 2}, "steps": 5, "chains": 2})
    assert res.metric("loss")[1].shape == (2, 1)


def test_temperature_only_for_plain_step_rules():
    noisy = {"every": 5, "noise": True}
    sgd = sgdlab.run(quad_cfg(steps=10, record=noisy))
    adam = sgdlab.run(quad_cfg(steps=10, record=noisy, optimizer={"name": "adam", "lr": 0.01}))
    assert "noise_temperature" in sgd.metrics and "noise_temperature" not in adam.metrics
    assert "noise_trace" in adam.metrics


def test_full_batch_is_gradient_descent_and_chains_agree():
    prob = {"name": "quadratic", "dim": 3, "n": 20}
    res = sgdlab.run(quad_cfg(problem=prob, batch={"sampling": "full"},
                              streams={"off": ["init"]}))
    assert torch.equal(res.final_params[0], res.final_params[5])


def test_result_metric_error_names_recorded():
    res = sgdlab.run(quad_cfg(steps=5))
    with pytest.raises(sgdlab.StoreError, match="recorded"):
        res.metric("nope")
