"""Source ``init``: where the chains start.

Chain k's initial point is ``problem.init_params(g_k)`` with g_k the chain's own ``init``
generator (each problem states its law: e.g. w* + s·z/√d with z ~ N(0, I) for the
quadratic, PyTorch's ``nn.Linear`` default for the MLP). Off: every chain starts at the
problem's fixed deterministic point (``init_params(None)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sgdlab.rng import Streams
from sgdlab.sources.base import Place, RunSetup, Source
from sgdlab.sources.registry import register

if TYPE_CHECKING:
    from sgdlab.problems.base import Problem


@register
class Init(Source):
    stream = "init"
    place = Place.INIT
    summary = "initial point of each chain, w₀ = problem.init_params(g_k)"
    off = "every chain starts at the problem's fixed deterministic point"

    def applies(self, run: RunSetup) -> bool:
        return run.problem.random_init


def initial_params(problem: Problem, streams: Streams, chain_ids: range) -> Tensor:
    """``W₀ [K, d]`` of chains ``chain_ids`` (the same point for chain k in any ensemble)."""
    if streams.enabled("init"):
        gens = streams.generators("init", chain_ids)
        return torch.stack([problem.init_params(g) for g in gens])
    w0 = problem.init_params(None)
    return w0.unsqueeze(0).repeat(len(chain_ids), 1)
