"""TensorBoard: live scalars from a :class:`~sgdlab.Monitor`, and stored runs as event files.

* :class:`TensorBoardSink` is a sink for ``Monitor(sinks=[...])``: the Monitor calls it with
  every recorded row, ``sink(step, {"loss": ..., "grad_norm": ..., "noise_scale": ...})``,
  and it writes each value as a TensorBoard scalar at that step (tag = the metric's name,
  after an optional prefix). The writer flushes every ``flush_secs`` seconds, so
  ``tensorboard --logdir DIR`` follows the training live.
* :func:`export_run` writes a stored run's metrics (any run kind: a Monitor run, an engine run
  with K chains) as event files under ``DIR/<run id>/``; it is ``sgdlab export RUN_ID
  --tensorboard DIR``. A run of one chain is one TensorBoard run; a run of K > 1 chains is
  three — ``median``, ``p10`` and ``p90`` across chains at each step (NaN ignored, as
  ``sgdlab show`` draws them) — or, with ``all_chains=True``, one per chain
  (``chain000``, …).

Values are stored as TensorBoard stores them: float32. Non-finite values (a NaN noise scale
when |G|² is not resolved, a diverged chain) are left out: TensorBoard has no way to draw
them, and the store keeps them.

Needs the ``tensorboard`` package (``pip install tensorboard``); without it, both raise
:class:`~sgdlab.integrations.OptionalDependencyError` in one line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sgdlab.integrations._deps import require
from sgdlab.report.figures import band
from sgdlab.store import Store

__all__ = ["ExportSummary", "TensorBoardSink", "export_run"]


def _writer(log_dir: Path, flush_secs: float) -> Any:
    module = require("torch.utils.tensorboard", "TensorBoard logging")
    return module.SummaryWriter(log_dir=str(log_dir), flush_secs=flush_secs)


class TensorBoardSink:
    """Write the Monitor's scalars to TensorBoard as they are recorded.

    Args:
        log_dir: the event files' folder (what ``tensorboard --logdir`` is given, or a
            sub-folder of it: one per run).
        prefix: put before every tag (``"sgdlab/"`` groups them in TensorBoard's view).
        flush_secs: seconds between writes of the queued events to disk.

    Example::

        sink = TensorBoardSink("tb/my-run")
        with sgdlab.Monitor(model, loss_fn, optimizer, sinks=[sink]) as mon:
            ...
        sink.close()
    """

    def __init__(self, log_dir: str | Path, *, prefix: str = "", flush_secs: float = 10.0) -> None:
        self.log_dir = Path(log_dir)
        self.prefix = prefix
        self.writer = _writer(self.log_dir, flush_secs)

    def __call__(self, step: int, scalars: Mapping[str, float]) -> None:
        """Write ``scalars`` at ``step`` (non-finite values are left out)."""
        for name, value in scalars.items():
            v = float(value)
            if math.isfinite(v):
                self.writer.add_scalar(self.prefix + name, v, int(step))

    def flush(self) -> None:
        """Write the queued events to disk now."""
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()

    def __enter__(self) -> TensorBoardSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_run` wrote: the run, its folder, the TensorBoard runs in it, the
    metric tags and the number of scalar points written."""

    run_id: str
    path: Path
    runs: tuple[str, ...]
    tags: tuple[str, ...]
    points: int


def _series(values: np.ndarray, all_chains: bool) -> dict[str, np.ndarray]:
    """The lines written for a metric's ``values [K, n]``: ``{"": row}`` for one chain, else
    the median and 10/90% across chains, or every chain."""
    if values.shape[0] == 1:
        return {"": values[0]}
    if all_chains:
        width = max(3, len(str(values.shape[0] - 1)))
        return {f"chain{k:0{width}d}": values[k] for k in range(values.shape[0])}
    med, lo, hi = band(values)
    return {"median": med, "p10": lo, "p90": hi}


def export_run(
    store: str | Path, run_id: str, log_dir: str | Path, *, all_chains: bool = False
) -> ExportSummary:
    """Write a stored run's metrics as TensorBoard event files under ``log_dir/<run id>/``.

    Args:
        store: the DuckDB results file (read-only; the run may still be running).
        run_id: the run (a unique prefix is enough).
        log_dir: the folder given to ``tensorboard --logdir``.
        all_chains: for a run of K > 1 chains, one TensorBoard run per chain instead of the
            median and the 10–90% band.

    The run is read before anything is written: an unknown run raises
    :class:`~sgdlab.StoreError` and leaves ``log_dir`` untouched. The run's config is added
    as a text summary (``sgdlab/config``).
    """
    db = Store(store, read_only=True)
    with db.session():  # one consistent view, even of a run being written
        info = db.run(run_id)
        rid = info["run_id"]
        data = {n: db.metric(rid, n) for n in db.metric_names(rid)}
    module = require("torch.utils.tensorboard", "TensorBoard export")  # before any folder
    root = Path(log_dir) / rid
    writers: dict[str, Any] = {}
    points = 0
    try:
        for name, (steps, values) in data.items():
            for sub, row in _series(values, all_chains).items():
                if sub not in writers:
                    writers[sub] = module.SummaryWriter(log_dir=str(root / sub), flush_secs=60)
                for step, value in zip(steps.tolist(), row.tolist(), strict=True):
                    if math.isfinite(value):
                        writers[sub].add_scalar(name, value, int(step))
                        points += 1
        if not writers:  # a run with no metrics still gets its config
            writers[""] = module.SummaryWriter(log_dir=str(root), flush_secs=60)
        config = json.dumps(info["config"], indent=1, sort_keys=True, default=str)
        first = writers[min(writers)]
        first.add_text("sgdlab/config", f"run {rid} ({info['kind']}, {info['status']})\n\n"
                       "```\n" + config + "\n```", 0)  # fmt: skip
    finally:
        for writer in writers.values():
            writer.close()
    return ExportSummary(rid, root, tuple(sorted(writers)), tuple(sorted(data)), points)
