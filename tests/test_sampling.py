"""Minibatch samplers: laws, determinism, per-chain independence of the ensemble size."""

import math

import numpy as np
import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.problems import build_problem
from sgdlab.rng import Streams
from sgdlab.sources.draws import ChainDraws, block_steps, uniform_draws
from sgdlab.sources.sampling import make_sampler


def finite_quadratic(n=50, d=2):
    return build_problem("quadratic", {"dim": d, "n": n}, Streams(0))


def indices(problem, sampler, steps):
    # X rows are distinct, recover indices by matching rows
    X = problem.X
    out = []
    for _ in range(steps):
        x, _ = sampler.next()
        match = (x.unsqueeze(2) == X.unsqueeze(0).unsqueeze(0)).all(-1)  # [K,b,N]
        out.append(match.float().argmax(-1))
    return torch.stack(out, dim=1)  # [K, steps, b]


def test_without_replacement_epoch_is_permutation():
    p = finite_quadratic(n=40)
    s = make_sampler(p, "without_replacement", 8, 3, Streams(1))
    idx = indices(p, s, 5)  # exactly one epoch of 5 batches
    for k in range(3):
        assert sorted(idx[k].reshape(-1).tolist()) == list(range(40))


def test_without_replacement_drops_remainder_and_reshuffles():
    p = finite_quadratic(n=42)
    s = make_sampler(p, "without_replacement", 8, 1, Streams(1))
    idx = indices(p, s, 10)[0]
    e1, e2 = idx[:5].reshape(-1), idx[5:].reshape(-1)
    assert len(set(e1.tolist())) == 40 and len(set(e2.tolist())) == 40
    assert not torch.equal(e1, e2)


def test_with_replacement_is_uniform():
    p = finite_quadratic(n=10)
    s = make_sampler(p, "with_replacement", 20, 4, Streams(2))
    idx = indices(p, s, 100).reshape(-1).numpy()
    counts = np.bincount(idx, minlength=10)
    expected = len(idx) / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # chi-square, 9 dof, p = 0.001


def test_chain_k_independent_of_ensemble_size():
    p = finite_quadratic(n=30)
    big = indices(p, make_sampler(p, "without_replacement", 4, 6, Streams(3)), 20)
    small = indices(p, make_sampler(p, "without_replacement", 4, 3, Streams(3)), 20)
    assert torch.equal(big[:3], small)


def test_sampling_off_is_in_order():
    p = finite_quadratic(n=10)
    s = make_sampler(p, "with_replacement", 4, 2, Streams(0, off={"sampling"}))
    idx = indices(p, s, 3)
    assert idx[0].reshape(-1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert torch.equal(idx[0], idx[1])


def test_full_and_stream():
    p = finite_quadratic(n=10)
    x, y = make_sampler(p, "full", None, 3, Streams(0)).next()
    assert x.shape == (3, 10, 2)
    pop = build_problem("quadratic", {"dim": 2})
    x, y = make_sampler(pop, "stream", 5, 3, Streams(0)).next()
    assert x.shape == (3, 5, 2) and y.shape == (3, 5)


def test_sampler_errors_name_fields():
    p = finite_quadratic(n=10)
    with pytest.raises(ConfigError) as e:
        make_sampler(p, "without_replacement", 11, 2, Streams(0))
    assert e.value.field == "batch.size"
    pop = build_problem("quadratic", {"dim": 2})
    with pytest.raises(ConfigError) as e:
        make_sampler(pop, "full", None, 2, Streams(0))
    assert e.value.field == "batch.sampling"


def test_chain_draws_blocks_are_contiguous_per_chain():
    s = Streams(4)
    m = block_steps(3)
    d = uniform_draws(s.generators("dropout", 2), (3,), torch.float64)
    got = torch.stack([d.next()[0] for _ in range(m + 2)], dim=1)  # [K, steps, 3]
    g = s.generator("dropout", 1)
    ref = torch.cat([torch.rand((m, 3), generator=g, dtype=torch.float64) for _ in range(2)])
    assert torch.equal(got[1], ref[: m + 2])
    assert isinstance(d, ChainDraws) and math.isfinite(float(got.sum()))
