"""Every source of randomness the engine draws, each bound to its named stream.

=============== ========== =====================================================
stream          place      module
=============== ========== =====================================================
``data``        data       :mod:`sgdlab.sources.data`
``label_noise`` data       :mod:`sgdlab.sources.data`
``init``        init       :mod:`sgdlab.sources.init`
``sampling``    sampling   :mod:`sgdlab.sources.sampling`
``dropout``     loss       :mod:`sgdlab.sources.dropout`
``augment``     loss       :mod:`sgdlab.sources.augment`
``quantize``    update     :mod:`sgdlab.sources.quantize`
``inject``      update     :mod:`sgdlab.sources.inject`
=============== ========== =====================================================

``label_noise`` in its dynamic mode also draws per step, for the loss.

The protocol and the places are in :mod:`sgdlab.sources.base`; the check of a config's
``streams.off`` in :mod:`sgdlab.sources.registry`; the per-step binding in
:mod:`sgdlab.sources.steps`. ``probe`` feeds the instruments (no source of a run draws it).
"""

from sgdlab.sources import (  # noqa: F401  (register the sources)
    augment,
    data,
    dropout,
    inject,
    quantize,
)
from sgdlab.sources.base import Place, RunSetup, Source, StepDraw
from sgdlab.sources.draws import ChainDraws, block_steps, request_draws, uniform_draws
from sgdlab.sources.init import initial_params
from sgdlab.sources.registry import SOURCES, active_sources, check_streams, register
from sgdlab.sources.sampling import SAMPLING_MODES, Sampler, make_sampler, resolve_mode
from sgdlab.sources.steps import StepDraws

__all__ = [
    "SAMPLING_MODES",
    "SOURCES",
    "ChainDraws",
    "Place",
    "RunSetup",
    "Sampler",
    "Source",
    "StepDraw",
    "StepDraws",
    "active_sources",
    "block_steps",
    "check_streams",
    "initial_params",
    "make_sampler",
    "register",
    "request_draws",
    "resolve_mode",
    "uniform_draws",
]
