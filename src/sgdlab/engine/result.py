"""The result of one engine run: recorded metrics, final parameters, divergence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgdlab.errors import StoreError


@dataclass
class RunResult:
    """What :func:`sgdlab.run` returns.

    Attributes:
        run_id: identifier in the store (also set when nothing is stored).
        config: the canonical config dict that was run.
        config_hash: its hash.
        metrics: ``name -> (steps [n], values [K, n])``; a diverged chain has NaN after its
            divergence step.
        final_params: ``[K, d]`` parameters after the last step (a diverged chain keeps its
            last finite parameters).
        average_params: Polyak–Ruppert average ``[K, d]`` when recorded, else ``None``.
        diverged_at: ``[K]`` step at which each chain diverged, −1 if it did not.
        seed_entropy: root entropy of the random streams.
        wall_seconds: time spent in the run loop.
        store_path: the DuckDB file it was written to, or ``None``.
    """

    run_id: str
    config: dict[str, Any]
    config_hash: str
    metrics: dict[str, tuple[np.ndarray, np.ndarray]]
    final_params: torch.Tensor
    diverged_at: np.ndarray
    seed_entropy: str
    wall_seconds: float
    average_params: torch.Tensor | None = None
    store_path: Path | None = None

    @property
    def chains(self) -> int:
        return int(self.final_params.shape[0])

    @property
    def diverged(self) -> np.ndarray:
        """``[K]`` booleans: which chains diverged."""
        return self.diverged_at >= 0

    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps [n], values [K, n])`` of metric ``name``."""
        try:
            return self.metrics[name]
        except KeyError:
            raise StoreError(
                f"metric {name!r} was not recorded; recorded: {', '.join(sorted(self.metrics))}"
            ) from None

    def metric_names(self) -> list[str]:
        return sorted(self.metrics)
