"""Named, independent random streams: one root seed, one stream per source of randomness.

Every random draw in sgdlab comes from a *named stream*. The streams are children of one
root :class:`numpy.random.SeedSequence`; a stream's child is addressed by a fixed integer
id (not by spawn order), so adding a stream, re-seeding one stream or turning one source
off never changes the draws of any other stream. Per-chain generators are the children
``(stream_id, chain)`` of the root, so chain ``k`` draws the same numbers whether it runs
alone or inside an ensemble of any size.

Conventions
-----------
* ``SeedSequence(entropy, spawn_key=(stream_id,))`` is exactly what
  ``SeedSequence(entropy).spawn`` would give as the child with that index (NumPy's
  recommended way to get independent streams; never ``seed + i`` arithmetic).
* A torch generator is seeded with the first 63 bits of the child's ``generate_state``.
* ``off`` sources are *deterministic*: components that consult :meth:`Streams.enabled`
  replace the draw by its deterministic counterpart (no dropout, no label flips,
  in-order batches, zero injected noise, a fixed initial point).

Example:
    >>> s = Streams(0)
    >>> g = s.generator("sampling", chain=3)
    >>> int(torch.randint(0, 10, (1,), generator=g))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

#: Fixed ids of the named streams. Never renumber: ids are part of every stream's entropy.
STREAM_IDS: dict[str, int] = {
    "init": 1,
    "sampling": 2,
    "label_noise": 3,
    "dropout": 4,
    "augment": 5,
    "quantize": 6,
    "inject": 7,
    "probe": 8,
    "data": 9,
}
STREAM_NAMES: tuple[str, ...] = tuple(STREAM_IDS)


def _check_name(name: str) -> None:
    if name not in STREAM_IDS:
        raise KeyError(f"unknown random stream {name!r}; streams are: {', '.join(STREAM_NAMES)}")


@dataclass(frozen=True)
class Streams:
    """The named random streams of one run.

    Args:
        seed: root seed (``None`` draws fresh OS entropy, which is then recorded).
        seeds: per-stream seed overrides, e.g. ``{"sampling": 7}``; only that stream changes.
        off: sources turned off (deterministic), e.g. ``{"dropout"}``.

    Attributes:
        entropy: the root entropy actually used; store it to reproduce the run.
    """

    seed: int | None = 0
    seeds: Mapping[str, int] = field(default_factory=dict)
    off: frozenset[str] = frozenset()
    entropy: int = field(init=False)

    def __post_init__(self) -> None:
        for name in self.seeds:
            _check_name(name)
        off = frozenset(self.off)
        for name in off:
            _check_name(name)
        object.__setattr__(self, "off", off)
        object.__setattr__(self, "seeds", dict(self.seeds))
        object.__setattr__(self, "entropy", int(np.random.SeedSequence(self.seed).entropy))

    # ----------------------------------------------------------------- queries
    def enabled(self, name: str) -> bool:
        """Whether source ``name`` is random (``True``) or turned off (deterministic)."""
        _check_name(name)
        return name not in self.off

    def seed_sequence(self, name: str, chain: int | None = None) -> np.random.SeedSequence:
        """The SeedSequence of stream ``name`` (shared) or of one chain of it."""
        _check_name(name)
        entropy = self.seeds.get(name, self.entropy)
        key = (STREAM_IDS[name],) if chain is None else (STREAM_IDS[name], int(chain))
        return np.random.SeedSequence(entropy, spawn_key=key)

    def _seed63(self, name: str, chain: int | None) -> int:
        state = self.seed_sequence(name, chain).generate_state(2, dtype=np.uint32)
        return (int(state[0]) | (int(state[1]) << 32)) & ((1 << 63) - 1)

    def generator(
        self, name: str, chain: int | None = None, device: str | torch.device = "cpu"
    ) -> torch.Generator:
        """A fresh ``torch.Generator`` for stream ``name`` (``chain=None``: the shared one)."""
        g = torch.Generator(device=device)
        g.manual_seed(self._seed63(name, chain))
        return g

    def generators(
        self, name: str, chains: int | Sequence[int], device: str | torch.device = "cpu"
    ) -> list[torch.Generator]:
        """One generator per chain; ``chains`` is a count or explicit chain indices."""
        idx: Iterable[int] = range(chains) if isinstance(chains, int) else chains
        return [self.generator(name, k, device) for k in idx]

    def numpy(self, name: str, chain: int | None = None) -> np.random.Generator:
        """A NumPy ``Generator`` (PCG64) for stream ``name``."""
        return np.random.default_rng(self.seed_sequence(name, chain))

    def describe(self) -> dict:
        """JSON-able record of the streams (stored with every run)."""
        return {
            "seed": self.seed,
            "entropy": str(self.entropy),
            "seeds": dict(self.seeds),
            "off": sorted(self.off),
        }


def as_generator(seed: int | torch.Generator = 0) -> torch.Generator:
    """The one helper that turns a ``seed``/``generator`` argument into a torch generator.

    Every library function that draws takes such an argument with its default visible in its
    signature (``generator: torch.Generator | int = 0``) and calls this: an ``int`` seeds a
    fresh CPU generator (the same draws on every call), a ``torch.Generator`` is used as given
    (its state advances, so successive calls draw fresh numbers). torch's global RNG is never
    used.

    Example:
        >>> g = as_generator(3)
        >>> bool(torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=as_generator(3))))
        True
    """
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"expected an int seed or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def forked_global_rng(tensors: Iterable[torch.Tensor]) -> contextlib.AbstractContextManager:
    """``torch.random.fork_rng`` over the CPU and every CUDA device holding one of ``tensors``:
    work done inside (an instrument's extra pass) leaves the user's global RNG state as it
    was, so their own draws (dropout masks) are unchanged."""
    devices = sorted({t.device.index or 0 for t in tensors if t.is_cuda})
    return torch.random.fork_rng(devices=devices)
