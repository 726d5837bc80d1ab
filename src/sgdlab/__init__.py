"""sgdlab — measure, control and exploit the randomness of stochastic gradient descent.

Flat public API::

    import sgdlab
    result = sgdlab.run("examples/quickstart.yaml", store="runs.duckdb")
    steps, subopt = result.metric("suboptimality")      # [K, len(steps)]

See ``docs/ARCHITECTURE.md`` for the layout.

The names below are imported on first use (PEP 562), so that ``import sgdlab`` and the
command line's ``sgdlab --help`` do not load torch; the ``TYPE_CHECKING`` block states the
same imports for readers and static tools (a test keeps the two identical).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sgdlab._version import __version__
from sgdlab.errors import ConfigError, SgdlabError, StoreError

if TYPE_CHECKING:
    from sgdlab.advice import Advice, advise
    from sgdlab.api import run
    from sgdlab.config import RunConfig, load_config
    from sgdlab.engine.result import RunResult
    from sgdlab.monitor import Monitor
    from sgdlab.rng import STREAM_NAMES, Streams
    from sgdlab.store import Store

#: public name → the module that defines it (imported on first access)
_LAZY = {
    "Advice": "sgdlab.advice",
    "advise": "sgdlab.advice",
    "run": "sgdlab.api",
    "RunConfig": "sgdlab.config",
    "load_config": "sgdlab.config",
    "RunResult": "sgdlab.engine.result",
    "Monitor": "sgdlab.monitor",
    "STREAM_NAMES": "sgdlab.rng",
    "Streams": "sgdlab.rng",
    "Store": "sgdlab.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sgdlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
