"""sgdlab — measure, control and exploit the randomness of stochastic gradient descent.

Flat public API::

    import sgdlab
    result = sgdlab.run("examples/quickstart.yaml", store="runs.duckdb")
    steps, subopt = result.metric("suboptimality")      # [K, len(steps)]

See ``docs/ARCHITECTURE.md`` for the layout.
"""

from __future__ import annotations

from sgdlab._version import __version__
from sgdlab.advice import Advice, advise
from sgdlab.api import run
from sgdlab.config import RunConfig, load_config
from sgdlab.engine.result import RunResult
from sgdlab.errors import ConfigError, SgdlabError, StoreError
from sgdlab.monitor import Monitor
from sgdlab.rng import STREAM_NAMES, Streams
from sgdlab.store import Store

__all__ = [
    "STREAM_NAMES",
    "Advice",
    "ConfigError",
    "Monitor",
    "RunConfig",
    "RunResult",
    "SgdlabError",
    "Store",
    "StoreError",
    "Streams",
    "__version__",
    "advise",
    "load_config",
    "run",
]
