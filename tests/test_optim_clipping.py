"""Clipping per chain against torch.nn.utils, and the batch-size scaling rules.

Covers: ``sgdlab.optim.clipping``, ``sgdlab.optim.scaling``.
"""

from __future__ import annotations

import math

import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.optim import clip_by_global_norm, clip_by_value, global_norm, scale_lr

F64 = torch.float64


def _grads() -> torch.Tensor:
    g = torch.randn(5, 7, generator=torch.Generator().manual_seed(3), dtype=F64)
    g[1] *= 0.01  # below the threshold: unchanged
    g[2] = 0.0  # zero gradient
    g[3] *= 100.0
    return g


def _torch_per_chain(grads: torch.Tensor, fn, limits) -> torch.Tensor:
    out = torch.empty_like(grads)
    for k in range(grads.shape[0]):
        p = torch.nn.Parameter(torch.zeros(grads.shape[1], dtype=F64))
        p.grad = grads[k].clone()
        fn([p], float(limits[k]))
        out[k] = p.grad
    return out


@pytest.mark.parametrize("per_chain", [False, True])
def test_clip_by_global_norm_matches_torch(per_chain: bool) -> None:
    g = _grads()
    original = g.clone()
    limits = torch.tensor([1.0, 1.0, 0.5, 3.0, math.inf], dtype=F64) if per_chain else [1.0] * 5
    got = clip_by_global_norm(g, limits if per_chain else 1.0)
    expected = _torch_per_chain(g, torch.nn.utils.clip_grad_norm_, limits)
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-15)
    assert torch.equal(g, original)
    assert torch.equal(got[1], g[1]) and torch.equal(got[2], g[2])
    assert bool((global_norm(got) <= torch.as_tensor(limits, dtype=F64)).all())


@pytest.mark.parametrize("per_chain", [False, True])
def test_clip_by_value_matches_torch(per_chain: bool) -> None:
    g = _grads()
    limits = torch.tensor([0.5, 0.001, 1.0, 2.0, 10.0], dtype=F64) if per_chain else [0.5] * 5
    got = clip_by_value(g, limits if per_chain else 0.5)
    expected = _torch_per_chain(g, torch.nn.utils.clip_grad_value_, limits)
    assert torch.equal(got, expected)


def test_scale_lr_rules() -> None:
    assert scale_lr(0.1, 256, 32, "linear") == pytest.approx(0.8)
    assert scale_lr(0.1, 128, 32, "sqrt") == pytest.approx(0.2)
    assert scale_lr(0.1, 16, 32, "sqrt") == pytest.approx(0.1 / math.sqrt(2))
    assert scale_lr(0.1, 256, 32, "none") == 0.1
    lr = torch.tensor([0.1, 0.2], dtype=F64)
    torch.testing.assert_close(scale_lr(lr, 64, 32, "linear"), 2 * lr)
    with pytest.raises(ConfigError, match="unknown scaling rule"):
        scale_lr(0.1, 64, 32, "quadratic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be > 0"):
        scale_lr(0.1, 0, 32)
