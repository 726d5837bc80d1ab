"""Named random streams: reproducibility, stream independence, chain independence."""

import numpy as np
import pytest
import torch

from sgdlab.rng import STREAM_NAMES, Streams


def draws(streams: Streams, name: str, chain: int | None = 0, n: int = 1000) -> torch.Tensor:
    return torch.randn(n, generator=streams.generator(name, chain), dtype=torch.float64)


def test_same_seed_same_draws():
    a, b = Streams(123), Streams(123)
    for name in STREAM_NAMES:
        assert torch.equal(draws(a, name), draws(b, name))


def test_different_seeds_differ():
    assert not torch.equal(draws(Streams(1), "sampling"), draws(Streams(2), "sampling"))


def test_streams_are_distinct():
    s = Streams(0)
    seen = {tuple(draws(s, name, n=4).tolist()) for name in STREAM_NAMES}
    assert len(seen) == len(STREAM_NAMES)


def test_reseeding_one_stream_leaves_others_unchanged():
    base = Streams(7)
    changed = Streams(7, seeds={"sampling": 99})
    assert not torch.equal(draws(base, "sampling"), draws(changed, "sampling"))
    for name in STREAM_NAMES:
        if name != "sampling":
            assert torch.equal(draws(base, name), draws(changed, name)), name
            assert torch.equal(draws(base, name, 5), draws(changed, name, 5)), name


def test_turning_a_source_off_leaves_others_unchanged():
    base = Streams(7)
    off = Streams(7, off={"dropout"})
    assert not off.enabled("dropout") and off.enabled("sampling")
    for name in STREAM_NAMES:
        assert torch.equal(draws(base, name, 3), draws(off, name, 3))


def test_chain_generator_does_not_depend_on_ensemble():
    s = Streams(5)
    gens = s.generators("sampling", 8)
    alone = s.generator("sampling", 6)
    assert torch.equal(torch.rand(10, generator=gens[6]), torch.rand(10, generator=alone))


def test_unknown_stream_is_named():
    with pytest.raises(KeyError, match="unknown random stream 'sampler'"):
        Streams(0).generator("sampler")
    with pytest.raises(KeyError, match="unknown random stream"):
        Streams(0, off={"nope"})


def test_entropy_recorded_and_reproduces():
    s = Streams(None)
    again = Streams(s.entropy)
    assert s.describe()["entropy"] == str(s.entropy)
    assert torch.equal(draws(s, "init"), draws(again, "init"))


def test_chains_statistically_independent():
    """Correlations between chains' draws are within the null distribution (|r|·√n ~ N(0,1))."""
    s = Streams(11)
    n, K = 4000, 12
    x = torch.stack([draws(s, "sampling", k, n) for k in range(K)]).numpy()
    r = np.corrcoef(x)
    off = r[np.triu_indices(K, 1)] * np.sqrt(n)
    # 66 pairs: under independence each is ≈ N(0,1); max |z| beyond 4.5 has p < 5e-4
    assert np.max(np.abs(off)) < 4.5
    # mean of z² ≈ 1 with SE √(2/66)
    assert abs(np.mean(off**2) - 1) < 4 * np.sqrt(2 / len(off))


def test_numpy_generator():
    assert np.array_equal(Streams(3).numpy("probe").normal(size=5),
                          Streams(3).numpy("probe").normal(size=5))
