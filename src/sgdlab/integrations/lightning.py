"""A Lightning ``Callback`` that runs a :class:`~sgdlab.Monitor` inside ``Trainer.fit``.

::

    from sgdlab.integrations.lightning import MonitorCallback

    trainer = L.Trainer(max_epochs=5, callbacks=[MonitorCallback(nn.CrossEntropyLoss(),
                                                                 store="runs.duckdb")])
    trainer.fit(module, loader)

What it records is what :class:`~sgdlab.Monitor` records (loss, gradient norm, learning rate,
tr Σ, noise scale, temperature: see its documentation), once per **optimizer step**, into
the store (a run of kind ``monitor``) and through every logger of the trainer
(``logger.log_metrics``, tags ``sgdlab/<metric>``, at the step's index — 0 for the first
optimizer step, as Lightning logs a ``training_step``'s metrics).

When: ``on_train_batch_start`` keeps each micro-batch and ``on_before_backward`` its loss;
``Monitor.step`` runs in a step **post**-hook of the (first) optimizer, i.e. right after
``optimizer.step()`` returns. There, and only there, everything belongs to the step just
taken: ``.grad`` is the gradient the step used (after the closure's backward and after
Lightning's gradient clipping — which runs after ``on_before_optimizer_step``, so that hook
would see it unclipped), the learning rate is the step's own (Lightning steps a per-step
scheduler *before* ``on_train_batch_end``, which would read the next step's), and the noise
statistics are measured at the parameters after the step, the Monitor's own convention.
With ``accumulate_grad_batches = k`` the hook fires once per k batches; the Monitor is given
the step's whole batch — the k micro-batches concatenated (or the last one when they cannot
be joined: see :mod:`sgdlab.integrations._batches`) with ``batch_size`` = all k — and the
step's loss, the sum of the micro-batches' losses as Lightning back-propagates them (each
divided by k). Manual optimization works the same way: each ``optimizer.step()`` is a step.

The model the Monitor measures is the ``LightningModule`` itself: ``loss_fn(module(x), y)``
must be the loss ``training_step`` minimizes, with ``reduction="mean"``. ``batch_fn`` turns
a batch into ``(inputs, targets)`` when it is not an ``(x, y)`` pair (a dict batch is passed
as ``module(**batch)`` with ``targets=None``). The run ends with ``fit``: ``complete``, or
``failed`` with the error when training raised. Under a distributed strategy the callback
measures each rank's module on its local batch (Lightning wraps the module so that the
Monitor cannot see the data-parallel wrapper): use ``sgdlab.Monitor`` in a plain DDP loop for
the data-parallel-aware estimator.

Needs ``lightning`` (``pip install lightning``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from sgdlab.integrations._batches import batch_len, join
from sgdlab.integrations._deps import require
from sgdlab.monitor import Monitor
from sgdlab.store import Store

_pl = require("lightning.pytorch", "sgdlab.integrations.lightning")

__all__ = ["MonitorCallback"]


def default_batch_fn(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` → ``(x, y)``; a dict → ``(dict, None)`` (``module(**batch)``)."""
    if isinstance(batch, Mapping):
        return dict(batch), None
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(
        f"MonitorCallback: a {type(batch).__name__} batch is not an (x, y) pair or a dict; pass "
        "batch_fn=lambda batch: (inputs, targets)"
    )


class MonitorCallback(_pl.Callback):
    """Measure gradient noise, noise scale and temperature while ``Trainer.fit`` trains.

    Args:
        loss_fn: the loss of ``training_step``, ``loss_fn(module(x), y)`` with
            ``reduction="mean"`` (``None``: the module's ``loss_fn`` attribute).
        store: a DuckDB path or :class:`~sgdlab.store.Store`; ``None`` keeps the metrics in
            memory (``callback.monitor.metrics``).
        batch_fn: a batch → ``(inputs, targets)``.
        log: also send every recorded row to the trainer's loggers.
        prefix: the loggers' tag prefix.
        **monitor_kwargs: passed to :class:`~sgdlab.Monitor` (``every``, ``noise_every``,
            ``population``, ``name``, ``sinks``, …).
    """

    def __init__(
        self,
        loss_fn: Any = None,
        *,
        store: str | Path | Store | None = None,
        batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
        log: bool = True,
        prefix: str = "sgdlab/",
        **monitor_kwargs: Any,
    ) -> None:
        super().__init__()
        self.loss_fn, self.store, self.log, self.prefix = loss_fn, store, log, prefix
        self.batch_fn = batch_fn or default_batch_fn
        self.monitor_kwargs = monitor_kwargs
        self.monitor: Monitor | None = None
        self._trainer: Any = None
        self._micro: list[Any] = []  # the micro-batches since the last optimizer step
        self._losses: list[Tensor] = []
        self._handle: Any = None
        self._broken = False

    # ------------------------------------------------------------ lifecycle
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            raise RuntimeError("MonitorCallback records one fit; create a new callback for another")
        loss_fn = self.loss_fn if self.loss_fn is not None else getattr(pl_module, "loss_fn", None)
        if loss_fn is None:
            raise ValueError("MonitorCallback needs loss_fn (or the module's loss_fn attribute): "
                             "the loss training_step minimizes, with reduction='mean'")  # fmt: skip
        kwargs = dict(self.monitor_kwargs)
        sinks = list(kwargs.pop("sinks", None) or ())
        if self.log and trainer.loggers:
            sinks.append(self._to_loggers)
        kwargs.setdefault("name", type(pl_module).__name__)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self._trainer = trainer
        self.monitor = Monitor(pl_module, loss_fn, optimizer, store=self.store, sinks=sinks,
                               **kwargs)  # fmt: skip
        self.monitor.start()
        if optimizer is not None:
            self._handle = optimizer.register_step_post_hook(self._after_step)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("complete")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._end("failed", f"{type(exception).__name__}: {exception}")

    def _end(self, status: str, error: str | None = None) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.monitor is not None:
            self.monitor.close(status, error=error)

    # ---------------------------------------------------------------- steps
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        self._micro.append(batch)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Tensor) -> None:
        self._losses.append(loss.detach())  # divided by k under accumulation, as Lightning does

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """The optimizer's step post-hook: record the step that just ended."""
        micro, losses = self._micro, self._losses
        self._micro, self._losses = [], []
        if self.monitor is None or not micro or self._broken:
            return
        try:
            step_batch, _ = join(micro)
            inputs, targets = self.batch_fn(step_batch)
            total = sum(batch_len(self.batch_fn(m)[0]) for m in micro)
            step_loss = float(sum(float(v) for v in losses)) if losses else None
        except Exception as exc:  # the user's batch_fn: never break training
            self._broken = True
            warnings.warn(f"MonitorCallback: cannot read the step's batch ({type(exc).__name__}: "
                          f"{exc}); monitoring stops, training goes on", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
            return
        self.monitor.step(inputs, targets, step_loss, batch_size=total)

    def _to_loggers(self, step: int, scalars: dict[str, float]) -> None:
        row = {self.prefix + name: value for name, value in scalars.items()}
        for logger in self._trainer.loggers:
            logger.log_metrics(row, step=step)
