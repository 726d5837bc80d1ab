"""Binding the per-step sources (``loss`` and ``update`` places) of one run to their streams."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.rng import Streams
from sgdlab.sources.base import Place, RunSetup, Source
from sgdlab.sources.draws import ChainDraws, request_draws
from sgdlab.sources.registry import SOURCES

__all__ = ["StepDraws"]


class StepDraws:
    """This step's draws of every active, enabled per-step source, for all chains.

    Each source draws from its own stream's per-chain generators (one :class:`ChainDraws`
    per source), so turning one off or re-seeding it changes no other source's numbers.
    :meth:`next` returns ``(loss, update)``: the ``loss`` draws as the ``noise`` dict of
    ``problem.per_sample_loss`` (``None`` when there are none) and the ``update`` draws
    (``{"inject": [K, d]}`` for SGLD, ``{"quantize": [K, d]}`` for stochastic rounding).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        run: RunSetup,
        streams: Streams,
        chain_ids: range,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        declared = {s for s, _, _ in run.problem.step_noise(run.batch_size).values()}
        unknown = sorted(d for d in declared if SOURCES.get(d) is None or
                         SOURCES[d].step_place is not Place.LOSS)  # fmt: skip
        if unknown:
            raise ConfigError(
                "problem", f"problem {run.problem.name!r} asks for per-step draws from "
                f"{unknown[0]!r}, which is no source drawing for the loss"
            )  # fmt: skip
        self._parts: list[tuple[Place, list[str], ChainDraws]] = []
        for source in sources:
            if source.step_place is None or not streams.enabled(source.stream):
                continue
            requests = source.draws(run)
            if requests:
                gens = streams.generators(source.stream, chain_ids)
                draws = request_draws(gens, requests, dtype, device)
                self._parts.append((source.step_place, list(requests), draws))

    def next(self) -> tuple[dict[str, Tensor] | None, dict[str, Tensor]]:
        loss: dict[str, Tensor] = {}
        update: dict[str, Tensor] = {}
        for place, keys, draws in self._parts:
            target = loss if place is Place.LOSS else update
            target.update(zip(keys, draws.next(), strict=True))
        return (loss or None), update
