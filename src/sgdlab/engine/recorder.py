"""The recorder shared by the engine and the Monitor: metric values per chain at steps.

Values are stored as float64 on the CPU, one ``[K]`` vector per recorded step (``K = 1`` for
the Monitor), and returned in the store's layout ``name -> (steps [n], values [K, n])``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["Recorder"]


class Recorder:
    """Accumulates ``[K]`` vectors per metric name at recorded steps.

    Example:
        >>> rec = Recorder()
        >>> rec.add("loss", 0, 1.5); rec.add("loss", 10, 0.5)
        >>> steps, values = rec.result()["loss"]
        >>> steps.tolist(), values.tolist()
        ([0, 10], [[1.5, 0.5]])
    """

    def __init__(self) -> None:
        self._steps: dict[str, list[int]] = {}
        self._values: dict[str, list[np.ndarray]] = {}

    def add(
        self, name: str, step: int, values: Tensor | float, dead: Tensor | None = None
    ) -> None:
        """Record ``values`` (``[K]``, or a number for one chain) of metric ``name`` at
        ``step``; chains marked in ``dead`` are recorded as NaN."""
        if isinstance(values, Tensor):
            v = values.detach().to(torch.float64).cpu().reshape(-1).numpy().copy()
            if dead is not None and bool(dead.any()):
                v = np.where(dead.cpu().numpy(), np.nan, v)
        else:
            v = np.array([float(values)])
        self._steps.setdefault(name, []).append(step)
        self._values.setdefault(name, []).append(v)

    def last(self) -> dict[str, float]:
        """The last recorded value of every metric (chain 0)."""
        return {name: float(vals[-1][0]) for name, vals in self._values.items() if vals}

    def result(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``name -> (steps [n], values [K, n])``."""
        return {
            name: (np.asarray(self._steps[name], dtype=np.int64), np.stack(vals, axis=1))
            for name, vals in self._values.items()
        }
