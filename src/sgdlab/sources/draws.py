"""Per-chain random draws, handed out one step at a time for all chains.

Each chain owns its own ``torch.Generator`` (from :class:`sgdlab.rng.Streams`), so chain
``k`` draws exactly the same numbers whether it runs alone or in an ensemble of any size.
To avoid a Python loop over chains at every step, each chain draws a *block* of ``M`` steps
at once; the blocks of all chains are stacked and then sliced one step at a time. ``M``
depends only on the per-chain size of one step's draw (never on the number of chains), so
the sequence of generator calls — hence every number — is independent of ``K``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

#: upper bound on the number of elements one chain draws per block
BLOCK_ELEMENTS = 1 << 16
#: upper bound on the number of steps in one block
MAX_BLOCK_STEPS = 64


def block_steps(elements_per_step: int) -> int:
    """Steps per block for a draw of ``elements_per_step`` elements per chain and step."""
    return max(1, min(MAX_BLOCK_STEPS, BLOCK_ELEMENTS // max(1, elements_per_step)))


Draw = Callable[[torch.Generator], tuple[Tensor, ...]]


class ChainDraws:
    """Stacked per-chain blocks of draws.

    Args:
        generators: one generator per chain.
        draw: ``draw(generator) -> (t1, t2, ...)``, each of shape ``[M, ...]`` (one block of
            ``M`` steps for one chain; ``M`` must be the same on every call).
        device: where the stacked tensors live.

    ``next()`` returns a tuple of tensors of shape ``[K, ...]`` for the next step.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        draw: Draw,
        device: torch.device | str = "cpu",
    ) -> None:
        self.generators = list(generators)
        self.draw = draw
        self.device = torch.device(device)
        self._block: tuple[Tensor, ...] | None = None
        self._pos = 0
        self._len = 0

    def _refill(self) -> None:
        parts = [self.draw(g) for g in self.generators]
        # stored step-major, [M, K, ...], so that each step's slice is contiguous
        self._block = tuple(
            torch.stack([p[i] for p in parts], dim=1).to(self.device)
            for i in range(len(parts[0]))
        )
        self._len = self._block[0].shape[0]
        self._pos = 0

    def next(self) -> tuple[Tensor, ...]:
        if self._block is None or self._pos >= self._len:
            self._refill()
        assert self._block is not None
        out = tuple(t[self._pos] for t in self._block)
        self._pos += 1
        return out


_DRAW = {"uniform": torch.rand, "normal": torch.randn}


def request_draws(
    generators: Sequence[torch.Generator],
    requests: Mapping[str, tuple[tuple[int, ...], str]],
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> ChainDraws:
    """Per-step draws of several tensors per chain, ``{key: (shape, kind)}`` with kind
    ``"uniform"`` (U[0,1)) or ``"normal"`` (N(0,1)), drawn one after the other from each
    chain's single generator (so no two keys share numbers); ``next()`` returns them in the
    order of ``requests``. The block size depends on the total elements per step only."""
    for key, (_, kind) in requests.items():
        if kind not in _DRAW:
            raise ValueError(f"draw {key!r}: unknown kind {kind!r}; use 'uniform' or 'normal'")
    specs = [(shape, _DRAW[kind]) for shape, kind in requests.values()]
    numel = sum(math.prod(shape) for shape, _ in specs)
    m = block_steps(numel)

    def draw(g: torch.Generator) -> tuple[Tensor, ...]:
        return tuple(fn((m, *shape), generator=g, dtype=dtype) for shape, fn in specs)

    return ChainDraws(generators, draw, device)


def uniform_draws(
    generators: Sequence[torch.Generator],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    kind: str = "uniform",
) -> ChainDraws:
    """Per-step draws of ``shape`` per chain: ``U[0,1)`` (``kind="uniform"``) or ``N(0,1)``."""
    return request_draws(generators, {"draw": (shape, kind)}, dtype, device)
