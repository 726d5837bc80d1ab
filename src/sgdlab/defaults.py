"""Built-in default configs (the quick start; ``examples/quickstart.yaml`` is the same)."""

from __future__ import annotations

from typing import Any

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
