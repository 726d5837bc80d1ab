"""Built-in defaults: the quick-start config (``examples/quickstart.yaml`` is the same) and
the results store's path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: where results go unless ``--store`` or ``$SGDLAB_STORE`` says otherwise
DEFAULT_STORE = Path("sgdlab-results") / "sgdlab.duckdb"


def default_store_path() -> Path:
    """``$SGDLAB_STORE`` if set, else ``./sgdlab-results/sgdlab.duckdb``."""
    env = os.environ.get("SGDLAB_STORE")
    return Path(env) if env else DEFAULT_STORE

QUICKSTART: dict[str, Any] = {
    "problem": {"name": "logistic_regression", "dataset": "digits", "l2": 1.0e-3},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "schedule": {"name": "inverse_time", "k": 0.01},
    "batch": {"size": 32, "sampling": "without_replacement"},
    "chains": 64,
    "steps": 2000,
    "seed": 0,
    "record": {"every": 20},
}
