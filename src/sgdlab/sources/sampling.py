"""Minibatch sampling over stacked chains: the primary noise source of SGD.

Modes (``batch.sampling``):

* ``with_replacement`` — each of the b indices uniform on {0..N−1}, independently. The
  minibatch gradient has covariance Σ/b.
* ``without_replacement`` — each epoch a fresh random permutation, cut into ⌊N/b⌋ batches
  of b distinct samples (the last N mod b samples of the permutation are dropped). Each
  batch is a simple random sample, so its gradient has covariance Σ/b · (N−b)/(N−1).
* ``full`` — the whole dataset every step: gradient descent (no sampling noise).
* ``stream`` — b fresh samples from the population every step (population problems,
  or finite problems treated as infinite: sampling with replacement is the same law);
* ``auto`` (the default) — ``without_replacement`` on a finite dataset, ``stream`` from a
  population.

When the ``sampling`` source is turned off, ``with_replacement`` and
``without_replacement`` become deterministic: batch t is samples tb, …, tb+b−1 (mod N),
in order, for every chain.

Every draw comes from the chain's own ``sampling`` generator (see :mod:`sgdlab.sources.draws`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.rng import Streams, as_generator
from sgdlab.sources.base import Place, RunSetup, Source
from sgdlab.sources.draws import ChainDraws, block_steps
from sgdlab.sources.registry import register

if TYPE_CHECKING:
    from sgdlab.problems.base import Problem

SAMPLING_MODES = ("auto", "with_replacement", "without_replacement", "full", "stream")


@register
class Sampling(Source):
    stream = "sampling"
    place = Place.SAMPLING
    summary = "which samples each step draws (the modes above)"
    off = "in-order batches tb … tb+b−1 (mod N), the same for every chain"

    def applies(self, run: RunSetup) -> bool:
        return run.sampling != "full"


def resolve_mode(problem: Problem, mode: str) -> str:
    """``auto`` → ``without_replacement`` on a finite dataset, ``stream`` from a population."""
    if mode == "auto":
        return "without_replacement" if problem.finite else "stream"
    return mode


class Sampler:
    """Yields ``(x [K,b,...], y [K,b])`` for every step of K chains.

    ``population`` is N when each batch holds b *distinct* samples of a dataset of N (without
    replacement, in order, or the full data: the minibatch mean then has the finite-population
    covariance Σ/b·(N−b)/(N−1)), ``None`` when samples are independent draws.
    """

    batch_size: int
    population: int | None = None

    def next(self) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


class IndexSampler(Sampler):
    """Gathers rows of a finite dataset by per-chain index blocks."""

    def __init__(
        self, problem: Problem, draws: ChainDraws, batch_size: int, distinct: bool = False
    ) -> None:
        assert problem.X is not None and problem.y is not None
        self.X, self.y = problem.X, problem.y
        self.draws = draws
        self.batch_size = batch_size
        self.population = problem.n if distinct else None

    def next(self) -> tuple[Tensor, Tensor]:
        (idx,) = self.draws.next()
        flat = idx.reshape(-1)  # index_select is several times faster than X[idx] here
        x = self.X.index_select(0, flat).view(*idx.shape, *self.X.shape[1:])
        return x, self.y.index_select(0, flat).view(idx.shape)


class InOrderSampler(Sampler):
    """Deterministic batches tb..tb+b−1 (mod N), identical for all chains (sampling off)."""

    def __init__(self, problem: Problem, chains: int, batch_size: int) -> None:
        assert problem.X is not None and problem.y is not None and problem.n is not None
        self.X, self.y, self.n = problem.X, problem.y, problem.n
        self.chains, self.batch_size = chains, batch_size
        self.population = self.n if batch_size <= self.n else None
        self.t = 0
        self.base = torch.arange(batch_size, device=self.X.device)

    def next(self) -> tuple[Tensor, Tensor]:
        idx = (self.t * self.batch_size + self.base) % self.n
        self.t += 1
        x = self.X[idx].unsqueeze(0).expand(self.chains, *self.X[idx].shape)
        y = self.y[idx].unsqueeze(0).expand(self.chains, self.batch_size)
        return x, y


class FullSampler(Sampler):
    """The whole dataset, every step (gradient descent)."""

    def __init__(self, problem: Problem, chains: int) -> None:
        assert problem.X is not None and problem.y is not None and problem.n is not None
        self.batch_size = self.population = problem.n
        self.x = problem.X.unsqueeze(0).expand(chains, *problem.X.shape)
        self.yy = problem.y.unsqueeze(0).expand(chains, *problem.y.shape)

    def next(self) -> tuple[Tensor, Tensor]:
        return self.x, self.yy


class StreamSampler(Sampler):
    """Fresh samples from the population: ``problem.sample(generator, M·b)`` per block."""

    def __init__(
        self, problem: Problem, generators: list[torch.Generator], batch_size: int, device: str
    ) -> None:
        self.batch_size = batch_size
        # one throwaway sample tells the size of a sample (its values are never used)
        probe_x, _ = problem.sample(as_generator(0), 1)
        m = block_steps(batch_size * max(1, probe_x[0].numel()))

        def draw(g: torch.Generator) -> tuple[Tensor, ...]:
            x, y = problem.sample(g, m * batch_size)
            return x.reshape(m, batch_size, *x.shape[1:]), y.reshape(m, batch_size)

        self.draws = ChainDraws(generators, draw, device)

    def next(self) -> tuple[Tensor, Tensor]:
        x, y = self.draws.next()
        return x, y


def _with_replacement(n: int, b: int):
    m = block_steps(b)

    def draw(g: torch.Generator) -> tuple[Tensor, ...]:
        return (torch.randint(0, n, (m, b), generator=g),)

    return draw


def _without_replacement(n: int, b: int):
    per_epoch = n // b
    epochs = max(1, math.ceil(min(64, block_steps(b)) / per_epoch))

    def draw(g: torch.Generator) -> tuple[Tensor, ...]:
        perms = [torch.randperm(n, generator=g)[: per_epoch * b] for _ in range(epochs)]
        return (torch.cat(perms).view(epochs * per_epoch, b),)

    return draw


def make_sampler(
    problem: Problem,
    mode: str,
    batch_size: int | None,
    chains: int,
    streams: Streams,
    device: str = "cpu",
    first_chain: int = 0,
) -> Sampler:
    """Build the sampler of ``mode`` for chains ``first_chain … first_chain+chains−1``;
    errors name ``batch.*`` fields."""
    if mode not in SAMPLING_MODES:
        raise ConfigError("batch.sampling", f"unknown mode {mode!r}; use one of {SAMPLING_MODES}")
    mode = resolve_mode(problem, mode)
    if mode == "full":
        if not problem.finite:
            raise ConfigError(
                "batch.sampling",
                f"'full' needs a finite dataset; problem {problem.name!r} is a population: "
                "use 'stream' or set the problem's n",
            )
        return FullSampler(problem, chains)
    if batch_size is None:
        raise ConfigError("batch.size", f"sampling {mode!r} needs a batch size")
    gens = streams.generators("sampling", range(first_chain, first_chain + chains))
    if mode == "stream" or not problem.finite:
        if mode != "stream":
            raise ConfigError(
                "batch.sampling",
                f"problem {problem.name!r} is a population (no finite N): use 'stream'",
            )
        if not streams.enabled("sampling"):
            raise ConfigError(
                "streams.off", "'sampling' cannot be turned off with stream sampling"
            )
        try:
            return StreamSampler(problem, gens, batch_size, device)
        except NotImplementedError:
            raise ConfigError(
                "batch.sampling", f"problem {problem.name!r} cannot draw fresh samples"
            ) from None
    n = problem.n
    assert n is not None
    if mode == "without_replacement" and batch_size > n:
        raise ConfigError(
            "batch.size",
            f"{batch_size} is larger than the dataset (N={n}) without replacement: "
            f"use a size ≤ {n}, sampling 'with_replacement', or 'full'",
        )
    if not streams.enabled("sampling"):
        return InOrderSampler(problem, chains, batch_size)
    draw = _with_replacement(n, batch_size) if mode == "with_replacement" else (
        _without_replacement(n, batch_size)
    )
    distinct = mode == "without_replacement"
    return IndexSampler(problem, ChainDraws(gens, draw, device), batch_size, distinct)
