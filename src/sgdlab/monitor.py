"""``sgdlab.Monitor``: the instrument for a user's own PyTorch training loop.

Two lines attach it::

    with sgdlab.Monitor(model, loss_fn, optimizer, store="runs.duckdb") as mon:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            mon.step(x, y, loss)

What it records (step t counts calls to :meth:`Monitor.step`):

* every ``every`` steps, at no extra cost: ``batch_size``, ``loss`` (the value passed in),
  ``grad_norm``
  (‖∇L‖₂ read from the parameters' ``.grad``, i.e. the gradient this step used), ``lr``
  (read from the optimizer; ``lr/group<i>`` for further parameter groups);
* every ``noise_every`` steps, one extra forward/backward on the same batch through
  :func:`sgdlab.measure.noise.stats` at the parameters *after* the optimizer step:
  ``trace_cov`` tr Σ̂ (per-sample gradient covariance, loss with ``reduction="mean"``),
  ``trace_cov_se``, ``grad_norm_sq`` |ḡ|², ``b_simple`` = tr Σ̂ / (|ḡ|² − tr Σ̂/b) (bias-
  corrected; from *this batch alone*, so noisy from one measurement to the next),
  ``noise_scale`` (the McCandlish et al. 2018 two-batch estimator of the same B_simple,
  smoothed by bias-corrected EMAs over the run: the value to act on, and the one
  :meth:`Monitor.advice` uses), ``mean_gsnr`` and ``temperature``
  T = η/(1−m)·(tr Σ/d)/(2b) (convention of :mod:`sgdlab.measure.noise.thermal`).

It never changes the trajectory: the extra pass runs under ``torch.random.fork_rng`` (the
global RNG state is restored, so the user's dropout masks are unchanged), and the model's
modes and ``.grad`` are restored. :meth:`Monitor.advice` turns the measurements into advice
(batch size against the noise scale, clipping, learning rate).

Storing (``store=...``): the run is inserted as ``running`` when the ``with`` block starts
(``kind='monitor'``, one chain); the metrics are appended in one short transaction every
``flush_every`` seconds (default 10), so a process killed midway loses at most that much and
``sgdlab show`` displays the run while it trains; when the block ends the rest is written and
the run marked ``complete`` — or ``failed`` with the error if the loop raised. The store is
locked only during those writes. A Monitor records one run: entering it again raises
``RuntimeError``. Used without ``with``, the first :meth:`Monitor.step` starts the run with a
warning; call :meth:`Monitor.close` when training ends (until then the run stays
``running``, and shows as stale once the process is gone).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from sgdlab.advice import Advice, advise
from sgdlab.engine.recorder import Recorder
from sgdlab.errors import SgdlabError
from sgdlab.interrupts import deferred
from sgdlab.measure.noise import NoiseScaleEstimator, gradient_noise, temperature
from sgdlab.rng import forked_global_rng
from sgdlab.store import Store, open_store

#: seconds an intermediate flush waits for the store's lock (it then keeps its rows for the
#: next flush rather than stall the training loop)
FLUSH_TIMEOUT = 2.0


class Monitor:
    """Measure gradient noise, noise scale and temperature while a user's loop trains.

    Args:
        model: the ``nn.Module`` being trained.
        loss_fn: the loss, ``loss_fn(model(x), y)`` with ``reduction="mean"``.
        optimizer: the ``torch.optim`` optimizer (learning rate and momentum are read from
            its first parameter group); ``None`` records no learning rate or temperature.
        store: a DuckDB path or :class:`~sgdlab.store.Store`; ``None`` keeps the metrics in
            memory only (``Monitor.metrics``).
        every: cadence of the free metrics (loss, gradient norm, learning rate).
        noise_every: cadence of the noise statistics (one extra forward/backward each);
            ``0`` turns them off.
        noise_mode: ``"eval"`` (default: sampling noise only, deterministic layers) or
            ``"train"`` (dropout noise included; needs no train-mode BatchNorm).
        population: dataset size N: each batch is then taken as distinct samples of N
            (without replacement), and ``b_simple`` and ``temperature`` use the
            finite-population formulas.
        ema_beta: decay of the noise-scale EMAs.
        name: label stored with the run.
        flush_every: seconds between writes of the metrics to the store (a crash loses at
            most this much).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Any,
        optimizer: torch.optim.Optimizer | None = None,
        store: str | Path | Store | None = None,
        every: int = 10,
        noise_every: int = 100,
        noise_mode: Literal["eval", "train"] = "eval",
        population: int | None = None,
        ema_beta: float = 0.9,
        name: str | None = None,
        flush_every: float = 10.0,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be ≥ 1, got {every}")
        if noise_every < 0:
            raise ValueError(f"noise_every must be ≥ 0 (0 = off), got {noise_every}")
        if not (isinstance(flush_every, int | float) and flush_every > 0):
            raise ValueError(f"flush_every must be seconds > 0, got {flush_every!r}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.every, self.noise_every = every, noise_every
        self.noise_mode, self.population = noise_mode, population
        self.name = name
        self.run_id = uuid.uuid4().hex[:12]
        self.t = 0
        self.noise_scale = NoiseScaleEstimator(beta=ema_beta)
        self._recorder = Recorder()
        self._store_arg = store
        self._store: Store | None = None
        self._flusher: Store | None = None
        self._start = 0.0
        self.last_noise: Any = None
        self.flush_every = float(flush_every)
        self._state = "new"  # new → open → closed: one Monitor records one run
        self._pending: list[tuple[str, int, float]] = []  # recorded, not yet stored
        self._last_flush = 0.0
        self._flush_warned = False

    # ------------------------------------------------------------- context
    def config(self) -> dict[str, Any]:
        """What the monitored run was (stored as the run's config)."""
        opt = self.optimizer
        opt_cfg: dict[str, Any] = {}
        if opt is not None:
            group = opt.param_groups[0]
            opt_cfg = {"name": type(opt).__name__}
            opt_cfg.update(
                {k: v for k, v in group.items() if isinstance(v, int | float | bool | str)}
            )
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {
            "kind": "monitor",
            "problem": {"name": type(self.model).__name__, "parameters": n_params},
            "model": repr(self.model)[:2000],
            "loss": repr(self.loss_fn),
            "optimizer": opt_cfg,
            "record": {
                "every": self.every,
                "noise_every": self.noise_every,
                "noise_mode": self.noise_mode,
            },
        }

    def start(self) -> Monitor:
        """Start the run (what entering ``with`` does): insert it as ``running`` in the
        store. A Monitor records one run; starting it again raises ``RuntimeError``."""
        if self._state != "new":
            raise RuntimeError(
                f"this Monitor already recorded run {self.run_id} ({self._state}); create a new "
                "Monitor for another run"
            )
        self._start = time.perf_counter()
        self._last_flush = time.monotonic()
        if self._store_arg is not None:
            store = open_store(self._store_arg)
            cfg = self.config()
            blob = json.dumps(cfg, sort_keys=True, default=str).encode()
            store.begin_run(
                self.run_id,
                kind="monitor",
                name=self.name,
                config=cfg,
                config_hash=hashlib.sha256(blob).hexdigest()[:16],
                chains=1,
            )
            self._store = store
            self._flusher = Store(store.path, timeout=FLUSH_TIMEOUT)
        self._state = "open"
        return self

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(
            status="complete" if exc_type is None else "failed",
            error=None if exc is None else f"{exc_type.__name__}: {exc}",
        )

    def _take_pending(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        rows, self._pending = self._pending, []
        grouped: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in rows:
            grouped.setdefault(name, []).append((step, value))
        return {
            name: (np.array([s for s, _ in pts], dtype=np.int64),
                   np.array([[v for _, v in pts]], dtype=np.float64))
            for name, pts in grouped.items()
        }  # fmt: skip

    def flush(self) -> None:
        """Append the metrics recorded since the last write to the store now (one short
        transaction; :meth:`step` does it every ``flush_every`` seconds). If the store stays
        busy for :data:`FLUSH_TIMEOUT` seconds the rows wait for the next flush."""
        self._last_flush = time.monotonic()
        if self._flusher is None or not self._pending:
            return
        kept = list(self._pending)
        try:
            self._flusher.finish_run(
                self.run_id, metrics=self._take_pending(), steps=self.t,
                wall_seconds=time.perf_counter() - self._start, status=None,
            )  # fmt: skip
        except SgdlabError as exc:
            self._pending = kept + self._pending
            if not self._flush_warned:
                warnings.warn(f"Monitor: metrics not written yet ({exc}); they are kept for the "
                              "next write", RuntimeWarning, stacklevel=3)  # fmt: skip
                self._flush_warned = True

    def close(self, status: str = "complete", error: str | None = None) -> None:
        """Write what is left to the store, set the run's status and end it (once; a second
        call does nothing)."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._store is None:
            return
        store, self._store, self._flusher = self._store, None, None
        failing = status != "complete"  # the loop's exception is already on its way out
        with deferred(reraise=not failing):
            try:
                store.finish_run(
                    self.run_id,
                    metrics=self._take_pending(),
                    steps=self.t,
                    wall_seconds=time.perf_counter() - self._start,
                    status=status,
                    error=error,
                )
            except SgdlabError as exc:
                if not failing:
                    raise
                warnings.warn(f"Monitor: the failed run could not be marked ({exc}); it stays "
                              "'running' (stale once this process ends)", RuntimeWarning,
                              stacklevel=3)  # fmt: skip

    # -------------------------------------------------------------- record
    def _add(self, name: str, value: float) -> None:
        self._recorder.add(name, self.t, float(value))
        if self._store is not None:
            self._pending.append((name, self.t, float(value)))

    @property
    def metrics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``name -> (steps [n], values [1, n])``, the engine's layout with one chain."""
        return self._recorder.result()

    def _grad_norm(self) -> float:
        total = 0.0
        for p in self.model.parameters():
            if p.grad is not None:
                total += float(p.grad.detach().double().pow(2).sum())
        return math.sqrt(total)

    def step(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        targets: Tensor | None,
        loss: Tensor | float | None = None,
    ) -> None:
        """Record this step (call once per step, after ``optimizer.step()``)."""
        if self._state != "open":
            self._begin_implicitly()
        t = self.t
        if t % self.every == 0:
            x0 = inputs[0] if isinstance(inputs, tuple | list) else inputs
            self._add("batch_size", float(x0.shape[0]))
            if loss is not None:
                self._add("loss", float(loss.detach()) if isinstance(loss, Tensor) else loss)
            self._add("grad_norm", self._grad_norm())
            if self.optimizer is not None:
                for i, group in enumerate(self.optimizer.param_groups):
                    self._add("lr" if i == 0 else f"lr/group{i}", float(group["lr"]))
        if self.noise_every and t % self.noise_every == 0:
            self._record_noise(inputs, targets)
        self.t += 1
        if self._store is not None and time.monotonic() - self._last_flush >= self.flush_every:
            self.flush()

    def _begin_implicitly(self) -> None:
        if self._state == "closed":
            raise RuntimeError(
                f"this Monitor is closed (run {self.run_id}); create a new Monitor for another run"
            )
        if self._store_arg is not None:
            warnings.warn(
                "Monitor.step() called outside `with Monitor(...)`: the run starts now; call "
                "mon.close() when training ends (until then it stays 'running'), or use `with`",
                RuntimeWarning,
                stacklevel=3,
            )
        self.start()

    def _record_noise(self, inputs: Tensor | tuple[Tensor, ...], targets: Tensor | None) -> None:
        x = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        b = int(x[0].shape[0])
        if b < 2:
            return
        with forked_global_rng(self.model.parameters()):
            stats = gradient_noise(
                self.model,
                self.loss_fn,
                inputs,
                targets,
                population=self.population,
                mode=self.noise_mode,
            )
        self.last_noise = stats
        tr, g2 = stats.trace_cov, stats.grad_norm_sq
        self._add("trace_cov", tr)
        self._add("trace_cov_se", stats.trace_cov_se)
        self._add("grad_norm_sq", g2)
        # tr Σ / (|ḡ|² − tr Var ḡ), finite-population corrected when ``population`` is set
        b_simple = stats.b_simple_unbiased
        self._add("b_simple", b_simple if math.isfinite(b_simple) else float("nan"))
        # two-batch estimator with micro-batches of one sample: mean |g_i|² = |ḡ|² + tr(b−1)/b
        # at b = 1 against |ḡ|² at b (effective size b(N−1)/(N−b) without replacement from N)
        N = self.population
        b_big = b if N is None else (math.inf if b >= N else b * (N - 1) / (N - b))
        self.noise_scale.update(g2 + tr * (b - 1) / b, g2, 1, b_big)
        scale = self.noise_scale.b_simple  # inf while the |G|² estimate is not positive
        self._add("noise_scale", scale if math.isfinite(scale) else float("nan"))
        self._add("mean_gsnr", stats.mean_gsnr)
        if isinstance(self.optimizer, torch.optim.SGD):  # the Langevin analogy is for SGD
            group = self.optimizer.param_groups[0]
            momentum = float(group.get("momentum", 0.0) or 0.0)
            temp = temperature(
                float(group["lr"]), b, stats, momentum=momentum,
                replacement=self.population is None,
            )  # fmt: skip
            self._add("temperature", temp.value)

    # ------------------------------------------------------------- summary
    def summary(self) -> dict[str, float]:
        """Last recorded value of every metric."""
        return self._recorder.last()

    def advice(self) -> list[Advice]:
        """What to change, from what was measured (:func:`sgdlab.advice.advise`)."""
        last = self.summary()
        b = last.get("batch_size")
        return advise(self.metrics, batch_size=None if b is None else int(b), lr=last.get("lr"))
