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
(batch size against the noise scale, clipping, learning rate). The run is written to the
DuckDB store when the ``with`` block ends (``kind='monitor'``, one chain), complete or — if
the loop raised — ``failed`` with the data gathered so far, so ``sgdlab runs`` / ``sgdlab
show`` display it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from sgdlab.advice import Advice, advise
from sgdlab.engine.recorder import Recorder
from sgdlab.measure.noise import NoiseScaleEstimator, gradient_noise, temperature
from sgdlab.rng import forked_global_rng
from sgdlab.store import Store, open_store


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
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be ≥ 1, got {every}")
        if noise_every < 0:
            raise ValueError(f"noise_every must be ≥ 0 (0 = off), got {noise_every}")
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
        self._owns_store = False
        self._start = 0.0
        self.last_noise: Any = None

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

    def __enter__(self) -> Monitor:
        self._start = time.perf_counter()
        if self._store_arg is not None:
            self._store = open_store(self._store_arg)
            self._owns_store = not isinstance(self._store_arg, Store)
            cfg = self.config()
            blob = json.dumps(cfg, sort_keys=True, default=str).encode()
            self._store.begin_run(
                self.run_id,
                kind="monitor",
                name=self.name,
                config=cfg,
                config_hash=hashlib.sha256(blob).hexdigest()[:16],
                chains=1,
            )
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(
            status="complete" if exc_type is None else "failed",
            error=None if exc is None else f"{exc_type.__name__}: {exc}",
        )

    def close(self, status: str = "complete", error: str | None = None) -> None:
        """Write what was recorded to the store (once) and close it."""
        if self._store is None:
            return
        self._store.finish_run(
            self.run_id,
            metrics=self.metrics,
            steps=self.t,
            wall_seconds=time.perf_counter() - self._start,
            status=status,
            error=error,
        )
        if self._owns_store:
            self._store.close()
        self._store = None

    # -------------------------------------------------------------- record
    def _add(self, name: str, value: float) -> None:
        self._recorder.add(name, self.t, float(value))

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
