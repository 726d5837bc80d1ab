"""Logistic regression: the Newton minimiser, its gauge, penalties, module view, flags."""

from __future__ import annotations

import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.problems import build_problem, logistic
from sgdlab.rng import Streams


@pytest.fixture(scope="module")
def iris():
    return build_problem("logistic_regression", {"dataset": "iris", "l2": 0.01}, Streams(0))


def test_newton_reaches_the_gradient_tolerance_and_caches(iris):
    w = iris.w_star
    assert iris.solver_info["grad_norm"] <= 1e-10
    assert iris.grad_F(w[None]).norm() <= 1e-10
    cache = iris._w_star_cache
    _ = iris.w_star, iris.f_star
    assert iris._w_star_cache is cache  # solved once per instance


def test_unpenalised_bias_gauge(iris):
    """F is flat along "add t to every bias": H has that null vector and w* picks Σ b = 0."""
    p, C = iris.n_features, iris.n_classes
    w = iris.w_star
    assert abs(float(w.reshape(p + 1, C)[p].sum())) < 1e-12
    v = torch.zeros(p + 1, C, dtype=torch.float64)
    v[p] = 1.0
    v = v.reshape(-1)
    assert (iris.hessian(w) @ v).abs().max() < 1e-12
    F = iris.objective(torch.stack([w, w + 0.7 * v]))
    assert F[0].item() == pytest.approx(F[1].item(), abs=1e-14)


def test_minimum_agrees_with_scikit_learn(iris):
    """sklearn minimises ½‖A‖² + C·Σ CE with the intercept free: l2 = 1/(C·N)."""
    from sklearn.linear_model import LogisticRegression

    X, y = iris.X.numpy(), iris.y.numpy()
    C_skl = 1.0 / (iris.l2 * iris.n)
    clf = LogisticRegression(C=C_skl, tol=1e-12, max_iter=10_000).fit(X, y)
    V = torch.cat([torch.from_numpy(clf.coef_.T), torch.from_numpy(clf.intercept_)[None]], 0)
    F_skl = iris.objective(V.reshape(1, -1))[0].item()
    assert iris.f_star <= F_skl + 1e-12
    assert F_skl - iris.f_star < 1e-8


def test_penalised_bias_and_conjugate_gradient_path(monkeypatch):
    params = {"dataset": "wine", "l2": 0.05, "penalize_bias": True}
    direct = build_problem("logistic_regression", params, Streams(0))
    monkeypatch.setattr(logistic, "_DIRECT_MAX_DIM", 1)
    cg = build_problem("logistic_regression", params, Streams(0))
    torch.testing.assert_close(cg.w_star, direct.w_star, rtol=1e-8, atol=1e-9)
    assert cg.f_star == pytest.approx(direct.f_star, rel=1e-13)
    assert cg.grad_F(cg.w_star[None]).norm() <= 1e-9
    H = direct.hessian(direct.w_star)
    assert torch.linalg.eigvalsh(H).min() >= 0.05 - 1e-12  # strongly convex: l2 on everything
    v = torch.randn(direct.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(direct._hvp_on(direct.w_star, v, direct.X), H @ v)


def test_penalty_is_inside_every_sample():
    p = build_problem("logistic_regression", {"dataset": "iris", "l2": 0.5})
    q = build_problem("logistic_regression", {"dataset": "iris", "l2": 0.0})
    w = torch.randn(2, p.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x, y = p.X[:7].expand(2, -1, -1), p.y[:7].expand(2, -1)
    weights = w.reshape(2, p.n_features + 1, p.n_classes)[:, :-1]
    pen = 0.25 * (weights**2).sum(dim=(1, 2))
    diff = p.per_sample_loss(w, x, y) - q.per_sample_loss(w, x, y)
    torch.testing.assert_close(diff, pen[:, None].expand(-1, 7))
    assert q.w_star is None and q.f_star is None


def test_objective_affordable_flag(monkeypatch):
    p = build_problem("logistic_regression", {"dataset": "iris"})
    assert p.objective_affordable  # 150 · 15
    monkeypatch.setattr(logistic.LogisticRegression, "affordable_limit", 1000)
    assert not build_problem("logistic_regression", {"dataset": "iris"}).objective_affordable


def test_holdout_split_and_evaluate():
    p = build_problem("logistic_regression", {"dataset": "breast_cancer", "holdout": 0.25})
    assert p.n + p.X_test.shape[0] == 569 and p.X_test.shape[0] == 142
    W = torch.zeros(3, p.dim, dtype=torch.float64)
    out = p.evaluate(W, "test")
    assert out["loss"].shape == (3,)
    torch.testing.assert_close(
        out["loss"], torch.full((3,), torch.log(torch.tensor(2.0)).item(), dtype=torch.float64)
    )
    assert ((out["error"] >= 0) & (out["error"] <= 1)).all()
    assert p.evaluate(W)["loss"][0].item() == pytest.approx(p.objective(W)[0].item())
    with pytest.raises(ValueError, match="holdout"):
        build_problem("logistic_regression", {"dataset": "iris"}).evaluate(W[:, :15], "test")


def test_unknown_dataset_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError) as info:
        build_problem("logistic_regression", {"dataset": "cifar"})
    assert info.value.field == "problem.dataset"
    with pytest.raises(ConfigError, match=r"problem\.l2"):
        build_problem("logistic_regression", {"l2": -1.0})
    with pytest.raises(ConfigError, match=r"problem\.path"):
        build_problem("logistic_regression", {"dataset": "npz"})
