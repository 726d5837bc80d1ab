"""Update rules: the vectorized K-chain rules against torch.optim run chain by chain (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from sgdlab.optim import (
    OPTIMIZERS,
    SGD,
    SGLD,
    Adam,
    Momentum,
    UpdateRule,
    build_optimizer,
)

K, D, STEPS = 4, 5, 20
F64 = torch.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}

# name -> (our config, per-chain torch kwargs builder); every hyperparameter differs per chain.
CASES = {
    "sgd": (
        {"weight_decay": [0.0, 0.01, 0.1, 0.5]},
        lambda c, k: torch.optim.SGD,
        lambda c, k: {"weight_decay": c["weight_decay"][k]},
    ),
    "momentum": (
        {"momentum": [0.0, 0.5, 0.9, 0.99], "weight_decay": [0.0, 0.1, 0.0, 0.01]},
        lambda c, k: torch.optim.SGD,
        lambda c, k: {"momentum": c["momentum"][k], "weight_decay": c["weight_decay"][k]},
    ),
    "nesterov": (
        {"momentum": [0.1, 0.5, 0.9, 0.95], "weight_decay": [0.0, 0.1, 0.0, 0.01]},
        lambda c, k: torch.optim.SGD,
        lambda c, k: {
            "momentum": c["momentum"][k],
            "weight_decay": c["weight_decay"][k],
            "nesterov": True,
        },
    ),
    "adam": (
        {
            "beta1": [0.9, 0.8, 0.0, 0.5],
            "beta2": [0.999, 0.9, 0.99, 0.5],
            "eps": [1e-8, 1e-3, 1e-6, 0.1],
            "weight_decay": [0.0, 0.1, 0.0, 0.01],
        },
        lambda c, k: torch.optim.Adam,
        lambda c, k: {
            "betas": (c["beta1"][k], c["beta2"][k]),
            "eps": c["eps"][k],
            "weight_decay": c["weight_decay"][k],
        },
    ),
    "rmsprop": (
        {
            "alpha": [0.99, 0.9, 0.5, 0.0],
            "eps": [1e-8, 1e-3, 1e-6, 0.1],
            "weight_decay": [0.0, 0.1, 0.0, 0.01],
            "momentum": [0.0, 0.5, 0.9, 0.3],
        },
        lambda c, k: torch.optim.RMSprop,
        lambda c, k: {
            "alpha": c["alpha"][k],
            "eps": c["eps"][k],
            "weight_decay": c["weight_decay"][k],
            "momentum": c["momentum"][k],
            "centered": c.get("centered", False),
        },
    ),
}


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    W0 = torch.randn(K, D, generator=g, dtype=F64)
    grads = torch.randn(STEPS, K, D, generator=g, dtype=F64)
    lr0 = torch.tensor([0.1, 0.03, 0.01, 0.2], dtype=F64)
    # a varying schedule, so the rule must use this step's lr
    lrs = torch.stack([lr0 * (1 + 0.3 * math.sin(t)) for t in range(STEPS)])
    return W0, grads, lrs


def _reference(cls, kwargs_per_chain, W0, grads, lrs) -> torch.Tensor:
    """Slow loop: one torch optimizer per chain; returns the parameters after every step."""
    out = torch.empty(STEPS, K, D, dtype=F64)
    for k in range(K):
        p = torch.nn.Parameter(W0[k].clone())
        opt = cls([p], lr=float(lrs[0, k]), foreach=False, **kwargs_per_chain(k))
        for t in range(STEPS):
            opt.param_groups[0]["lr"] = float(lrs[t, k])
            p.grad = grads[t, k].clone()
            opt.step()
            out[t, k] = p.detach()
    return out


def _fast(name, cfg, W0, grads, lrs) -> tuple[torch.Tensor, object]:
    rule, lr0 = build_optimizer({"name": name, "lr": lrs[0].tolist(), **cfg}, K, F64, "cpu")
    torch.testing.assert_close(lr0, lrs[0], rtol=0, atol=0)
    W, state = W0.clone(), rule.init(W0)
    out = torch.empty(STEPS, K, D, dtype=F64)
    for t in range(STEPS):
        W, state = rule.update(grads[t], state, W, lrs[t])
        out[t] = W
    return out, state


@pytest.mark.parametrize(
    ("name", "centered"), [(name, False) for name in sorted(CASES)] + [("rmsprop", True)]
)
def test_fast_matches_torch_optim_per_chain(name: str, centered: bool) -> None:
    cfg, cls, kw = CASES[name]
    if centered:  # alpha = 0 makes a − ḡ² = 0 up to rounding, where torch's FMA gives NaN
        cfg = {**cfg, "centered": True, "alpha": [0.99, 0.9, 0.5, 0.3]}
    W0, grads, lrs = _problem()
    fast, _ = _fast(name, cfg, W0, grads, lrs)
    ref = _reference(cls(cfg, 0), lambda k: kw(cfg, k), W0, grads, lrs)
    torch.testing.assert_close(fast, ref, **TOL)


def test_state_matches_torch_buffers() -> None:
    cfg, _, kw = CASES["adam"]
    W0, grads, lrs = _problem()
    _, state = _fast("adam", cfg, W0, grads, lrs)
    assert state.step.tolist() == [STEPS] * K
    for k in range(K):
        p = torch.nn.Parameter(W0[k].clone())
        opt = torch.optim.Adam([p], lr=float(lrs[0, k]), foreach=False, **kw(cfg, k))
        for t in range(STEPS):
            opt.param_groups[0]["lr"] = float(lrs[t, k])
            p.grad = grads[t, k].clone()
            opt.step()
        torch.testing.assert_close(state.exp_avg[k], opt.state[p]["exp_avg"], **TOL)
        torch.testing.assert_close(state.exp_avg_sq[k], opt.state[p]["exp_avg_sq"], **TOL)


def test_momentum_state_is_torch_momentum_buffer() -> None:
    cfg, _, kw = CASES["momentum"]
    W0, grads, lrs = _problem()
    _, state = _fast("momentum", cfg, W0, grads, lrs)
    k = 2
    p = torch.nn.Parameter(W0[k].clone())
    opt = torch.optim.SGD([p], lr=float(lrs[0, k]), foreach=False, **kw(cfg, k))
    for t in range(STEPS):
        opt.param_groups[0]["lr"] = float(lrs[t, k])
        p.grad = grads[t, k].clone()
        opt.step()
    torch.testing.assert_close(state.velocity[k], opt.state[p]["momentum_buffer"], **TOL)


def test_sgld_zero_temperature_is_sgd_exactly() -> None:
    W0, grads, lrs = _problem()
    noise = torch.randn(K, D, generator=torch.Generator().manual_seed(5), dtype=F64)
    sgd = SGD(weight_decay=torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=F64))
    sgld = SGLD(temperature=0.0, weight_decay=sgd.weight_decay)
    expected, _ = sgd.update(grads[0], sgd.init(W0), W0, lrs[0])
    for n in (None, noise):
        got, _ = sgld.update(grads[0], sgld.init(W0), W0, lrs[0], n)
        assert torch.equal(got, expected)
    # noise=None is SGD at any temperature
    hot = SGLD(temperature=torch.full((K,), 3.0, dtype=F64))
    got, _ = hot.update(grads[0], hot.init(W0), W0, lrs[0], None)
    plain, _ = SGD().update(grads[0], SGD().init(W0), W0, lrs[0])
    assert torch.equal(got, plain)


def test_sgld_hand_formula() -> None:
    W0, grads, _ = _problem()
    noise = torch.randn(K, D, generator=torch.Generator().manual_seed(6), dtype=F64)
    T = torch.tensor([0.0, 0.01, 0.5, 2.0], dtype=F64)
    rule, lr0 = build_optimizer({"name": "sgld", "lr": 0.1, "temperature": T.tolist()}, K)
    assert rule.needs_noise and not SGD.needs_noise
    got, _ = rule.update(grads[0], rule.init(W0), W0, lr0, noise)
    eta = lr0[:, None]
    expected = W0 - eta * grads[0] + torch.sqrt(2 * eta * T[:, None]) * noise
    torch.testing.assert_close(got, expected, rtol=1e-15, atol=1e-15)


def test_momentum_effective_step_is_lr_over_one_minus_m() -> None:
    m = torch.tensor([0.0, 0.5, 0.9, 0.99], dtype=F64)
    rule = Momentum(momentum=m)
    W = torch.zeros(K, 1, dtype=F64)
    state, g, lr = rule.init(W), torch.ones(K, 1, dtype=F64), torch.full((K,), 0.01, dtype=F64)
    for _ in range(3000):
        prev = W
        W, state = rule.update(g, state, W, lr)
    torch.testing.assert_close((prev - W)[:, 0], 0.01 / (1 - m), rtol=1e-9, atol=0)


def test_rules_satisfy_protocol_and_keep_dtype() -> None:
    W = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    for name, cls in OPTIMIZERS.items():
        extra = {"temperature": 0.1} if name == "sgld" else {}
        rule, lr0 = build_optimizer({"name": name, **extra}, 3, torch.float32, "cpu")
        assert isinstance(rule, UpdateRule) and rule.name == name and isinstance(rule, cls)
        noise = torch.zeros_like(W) if rule.needs_noise else None
        new, state = rule.update(torch.ones_like(W), rule.init(W), W, lr0, noise)
        assert new.dtype == torch.float32 and new.shape == W.shape
        assert isinstance(state, tuple)
    # float hyperparameters given directly broadcast to all chains
    new, _ = Adam(beta1=0.5).update(torch.ones_like(W), Adam().init(W), W, torch.ones(3))
    assert new.dtype == torch.float32
