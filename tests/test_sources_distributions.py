"""Each new noise source against its formula, with tolerances from the standard error.

Label noise (static and dynamic flip rates q(1 − 1/C), uniform replacement classes),
augmentation (shift law uniform on {−s..s}: mean 0, variance s(s+1)/3; the shift and the
pixel noise against slow references), quantization (stochastic rounding unbiased with
variance Δ²p(1−p); nearest rounding biased, |e| ≤ Δ/2, ≈ uniform; bfloat16/float16 relative
errors ≤ 2^−8 / 2^−11), input dropout and the MLP's normal initialisation.

Tolerances: a frequency r of n independent trials has SE √(r(1−r)/n); a mean of n iid
draws SE σ/√n; a sample variance SE √((μ₄ − σ⁴)/n). Every check allows Z = 4.5 SE
(two-sided p ≈ 7e−6 per check, so the ~40 checks here fail by chance with probability
< 3e−4 at the fixed seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdlab.engine import prepare
from sgdlab.optim.quantization import grid_step, quantize
from sgdlab.problems import build_problem
from sgdlab.problems.data_noise import augment_images, flip_labels, redraw_labels, shift_values
from sgdlab.rng import Streams

Z = 4.5


def within(measured: float, expected: float, se: float) -> None:
    assert abs(measured - expected) <= Z * se, (measured, expected, se)


# ------------------------------------------------------------------ label noise
def test_static_flip_rate_and_uniform_replacements():
    n, C, q = 200_000, 4, 0.2
    y = torch.zeros(n, dtype=torch.int64)
    out = flip_labels(y, C, q, torch.Generator().manual_seed(1))
    r = q * (1 - 1 / C)
    changed = (out != 0).double()
    within(float(changed.mean()), r, math.sqrt(r * (1 - r) / n))
    for c in range(1, C):  # each wrong class gets q/C
        f = float((out == c).double().mean())
        within(f, q / C, math.sqrt(q / C * (1 - q / C) / n))


def test_static_label_noise_on_a_bundled_dataset():
    params = {"dataset": "digits", "label_noise": 0.3}
    noisy = build_problem("logistic_regression", params, Streams(3))
    clean = build_problem("logistic_regression", params, Streams(3, off=["label_noise"]))
    n, r = clean.n, 0.3 * (1 - 1 / 10)
    assert torch.equal(noisy.X, clean.X)
    within(float((noisy.y != clean.y).double().mean()), r, math.sqrt(r * (1 - r) / n))
    dynamic = build_problem("logistic_regression", {**params, "label_noise_mode": "dynamic"},
                            Streams(3))  # fmt: skip
    assert torch.equal(dynamic.y, clean.y)  # dynamic noise leaves the stored labels clean


def test_dynamic_flip_rate_from_the_engine_draws():
    config = {"problem": {"name": "mlp", "dataset": "digits", "widths": [4], "label_noise": 0.4,
                          "label_noise_mode": "dynamic"},
              "chains": 8, "steps": 10, "batch": {"size": 50}, "dtype": "float64"}  # fmt: skip
    plan = prepare(config)
    changed, again, total = 0, 0, 0
    for _ in range(50):
        x, y = plan.sampler.next()
        loss, _ = plan.step_draws.next()
        _, y1 = plan.problem.noisy_batch(x, y, loss)
        changed += int((y1 != y).sum())
        total += y.numel()
        # the same batch drawn again is relabelled afresh (independent uniforms)
        _, y2 = plan.problem.noisy_batch(x, y, plan.step_draws.next()[0])
        again += int((y2 != y1).sum())
    r = 0.4 * 0.9
    within(changed / total, r, math.sqrt(r * (1 - r) / total))
    # two independent relabellings differ with probability 1 − [(1−r)² + r²/(C−1)... ]:
    # P(same) = (1−r)² + Σ_{c≠y} (q/C)² = (1−r)² + 9·0.04²
    same = (1 - r) ** 2 + 9 * 0.04**2
    within(again / total, 1 - same, math.sqrt(same * (1 - same) / total))


def test_redraw_labels_maps_uniforms_to_classes():
    y = torch.tensor([[0, 1, 2]])
    out = redraw_labels(y, 3, 0.5, torch.tensor([[0.1, 0.9, 0.49]]),
                        torch.tensor([[0.99, 0.0, 0.5]]))  # fmt: skip
    assert out.tolist() == [[2, 1, 1]]


# ------------------------------------------------------------------ augmentation
@pytest.mark.parametrize("s", [1, 2, 3])
def test_shift_law_is_uniform_on_minus_s_to_s(s):
    n = 100_000
    d = shift_values(torch.rand(n, generator=torch.Generator().manual_seed(s)), s).double()
    var = s * (s + 1) / 3
    within(float(d.mean()), 0.0, math.sqrt(var / n))
    m4 = sum(k**4 for k in range(-s, s + 1)) / (2 * s + 1)
    within(float(d.var()), var, math.sqrt((m4 - var**2) / n))
    assert set(d.long().tolist()) == set(range(-s, s + 1))


def _slow_shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    H, W = img.shape
    out = np.zeros_like(img)
    for i in range(H):
        for j in range(W):
            if 0 <= i - dy < H and 0 <= j - dx < W:
                out[i, j] = img[i - dy, j - dx]
    return out


def test_augment_images_against_a_slow_reference():
    g = torch.Generator().manual_seed(0)
    K, b, H, W, s = 2, 5, 8, 8, 2
    raw = torch.rand(K, b, H * W, generator=g, dtype=torch.float64) * 16
    mean = torch.rand(H * W, generator=g, dtype=torch.float64) * 4
    std = 1 + torch.rand(H * W, generator=g, dtype=torch.float64)
    x = (raw - mean) / std
    u_shift = torch.rand(K, b, 2, generator=g, dtype=torch.float64)
    u_flip = torch.rand(K, b, generator=g, dtype=torch.float64)
    z = torch.randn(K, b, H * W, generator=g, dtype=torch.float64)
    got = augment_images(x, (H, W), shift=s, flip=True, noise_std=0.7, u_shift=u_shift,
                         u_flip=u_flip, z_noise=z, mean=mean, std=std)  # fmt: skip
    d = shift_values(u_shift, s)
    for k in range(K):
        for i in range(b):
            img = _slow_shift(raw[k, i].reshape(H, W).numpy(), int(d[k, i, 0]), int(d[k, i, 1]))
            if u_flip[k, i] < 0.5:
                img = img[:, ::-1]
            ref = (img.reshape(-1) + 0.7 * z[k, i].numpy() - mean.numpy()) / std.numpy()
            np.testing.assert_allclose(got[k, i].numpy(), ref, rtol=0, atol=1e-12)


def test_augmentation_needs_images():
    from sgdlab.errors import ConfigError

    with pytest.raises(ConfigError, match="need images") as err:
        build_problem("mlp", {"dataset": "iris", "augment_shift": 1}, Streams(0))
    assert err.value.field == "problem.augment_shift"
    build_problem("mlp", {"dataset": "iris", "augment_noise": 0.1}, Streams(0))  # noise is fine


# ------------------------------------------------------------------ quantization
def _fixed_gradient(d: int = 40) -> torch.Tensor:
    g = torch.randn(1, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g[0, 3] = 0.0  # a zero coordinate is a level: it stays 0
    return g


def _slow_stochastic(g: torch.Tensor, bits: int, u: torch.Tensor) -> torch.Tensor:
    """Coordinate by coordinate: the two neighbouring levels iΔ, up when u < p."""
    out = torch.empty_like(g)
    for k in range(g.shape[0]):
        R = max(abs(float(v)) for v in g[k])
        L = 2 ** (bits - 1) - 1
        delta = R / L
        levels = [i * delta for i in range(-L, L + 1)]
        for j, v in enumerate(g[k].tolist()):
            lower = max(lv for lv in levels if lv <= v + 1e-15 * R)
            upper = min(lv for lv in levels if lv >= lower + 0.5 * delta) if lower < R else lower
            p = (v - lower) / delta
            out[k, j] = upper if float(u[k, j]) < p else lower
    return out


def test_stochastic_rounding_against_a_slow_reference():
    g = torch.randn(3, 30, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u = torch.rand(3, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(quantize(g, "stochastic", 4, u), _slow_stochastic(g, 4, u),
                               rtol=0, atol=1e-14)  # fmt: skip


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_stochastic_rounding_is_unbiased_with_variance_delta2_p_1mp(bits):
    g, M = _fixed_gradient(), 20_000
    u = torch.rand(M, g.shape[1], generator=torch.Generator().manual_seed(bits),
                   dtype=torch.float64)  # fmt: skip
    Q = quantize(g.expand(M, -1), "stochastic", bits, u)
    delta = float(grid_step(g, bits))
    v = g[0] / delta
    p = v - torch.floor(v)
    var = delta**2 * p * (1 - p)
    err = Q - g
    assert float(err.abs().max()) <= delta * (1 + 1e-12)
    assert torch.equal(Q[:, 3], torch.zeros(M, dtype=torch.float64))
    se_mean = torch.sqrt(var / M)
    ok = var > 0
    zs = (err.mean(0)[ok] / se_mean[ok]).abs()
    assert float(zs.max()) <= Z, float(zs.max())  # every coordinate unbiased
    # the trace of the added variance, Σ_j Δ²p(1−p), with the SE of a sum of sample variances
    mu4 = delta**4 * p * (1 - p) * (1 - 3 * p + 3 * p**2)
    within(float(err.var(0).sum()), float(var.sum()), math.sqrt(float((mu4 - var**2).sum()) / M))
    assert float(var.sum()) <= g.shape[1] * delta**2 / 4


def test_nearest_rounding_is_deterministic_biased_and_near_uniform():
    n, bits = 200_000, 6
    g = torch.rand(1, n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    g = 2 * g - 1
    Q = quantize(g, "nearest", bits)
    delta = float(grid_step(g, bits))
    e = (Q - g)[0]
    assert float(e.abs().max()) <= delta / 2 * (1 + 1e-12)
    assert torch.equal(Q, quantize(g, "nearest", bits))  # no draw
    # over coordinates spread along the grid the error is ≈ uniform on [−Δ/2, Δ/2]
    within(float(e.mean()), 0.0, delta / math.sqrt(12 * n))
    se_sq = delta**2 * math.sqrt((1 / 80 - 1 / 144) / n)  # Var(e²) = Δ⁴(1/80 − 1/144)
    within(float((e**2).mean()), delta**2 / 12, se_sq)
    # but at a fixed w it does not average out: a small coordinate is rounded to 0 for ever
    small = torch.tensor([[1.0, 0.3 / (2 ** (bits - 1) - 1)]], dtype=torch.float64)
    assert float(quantize(small, "nearest", bits)[0, 1]) == 0.0
    draws = torch.rand(4000, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    mean_sr = quantize(small.expand(4000, -1), "stochastic", bits, draws)[:, 1].mean()
    d = float(grid_step(small, bits))
    within(float(mean_sr), float(small[0, 1]), d * math.sqrt(0.3 * 0.7 / 4000))


@pytest.mark.parametrize(("mode", "u"), [("bfloat16", 2.0**-8), ("float16", 2.0**-11)])
def test_float_formats_relative_error(mode, u):
    n = 100_000
    g = torch.exp(torch.empty(1, n, dtype=torch.float64).uniform_(
        -5, 5, generator=torch.Generator().manual_seed(9)))  # fmt: skip
    g = g * torch.where(torch.rand(1, n, generator=torch.Generator().manual_seed(10)) < 0.5, -1, 1)
    rel = ((quantize(g, mode) - g) / g)[0]
    assert float(rel.abs().max()) <= u * (1 + 1e-12)
    assert float(rel.abs().max()) > 0.9 * u  # the bound is attained
    # round to nearest: the relative error is symmetric about 0
    within(float(rel.mean()), 0.0, float(rel.std()) / math.sqrt(n))


# ------------------------------------------------------------------ networks
def test_input_dropout_keeps_one_minus_q_and_rescales():
    prob = build_problem("mlp", {"dataset": "iris", "widths": [], "input_dropout": 0.25},
                         Streams(0), torch.float64)  # fmt: skip
    assert "dropout_l0" in prob.step_noise(7)
    n = 100_000
    u = torch.rand(1, n, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    from sgdlab.problems.mlp import _drop

    h = torch.ones(1, n, 4, dtype=torch.float64)
    out = _drop(h, {"dropout_l0": u}, "dropout_l0", 0.25)
    kept = float((out > 0).double().mean())
    within(kept, 0.75, math.sqrt(0.75 * 0.25 / (4 * n)))
    assert set(out.unique().tolist()) == {0.0, 1 / 0.75}


def test_mlp_normal_init_has_the_uniform_variance():
    params = {"dataset": "digits", "widths": [256], "init_distribution": "normal",
              "init_scale": 2.0}  # fmt: skip
    prob = build_problem("mlp", params, Streams(0), torch.float64)
    w = prob.init_params(torch.Generator().manual_seed(0))
    first = w[: 64 * 256]
    var = (2.0 / math.sqrt(64)) ** 2 / 3
    n = first.numel()
    within(float(first.var()), var, var * math.sqrt(2 / n))
    assert abs(float(first.mean())) <= Z * math.sqrt(var / n)
    uni = build_problem("mlp", {**params, "init_distribution": "uniform"}, Streams(0))
    wu = uni.init_params(torch.Generator().manual_seed(0)).double()[: 64 * 256]
    assert float(wu.abs().max()) <= 2.0 / 8 and float(wu.abs().max()) > 0.99 * 2.0 / 8
