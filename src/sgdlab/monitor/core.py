"""The :class:`Monitor` class (documented in :mod:`sgdlab.monitor`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sgdlab.advice import Advice, advise
from sgdlab.distributed import LocalNormHook, data_parallel, unwrap
from sgdlab.engine.recorder import Recorder
from sgdlab.measure.noise import NoiseScaleEstimator
from sgdlab.monitor.batches import as_batch, batch_size_of
from sgdlab.monitor.gradients import NO_GRAD_NOTE, NO_STEP_NOTE, GradTap, grad_norm
from sgdlab.monitor.guard import Event, Guard, warn
from sgdlab.monitor.noise import NoiseMode, NoiseProbe
from sgdlab.monitor.options import AUTO_NOISE_EVERY, NOISE_BUDGET, check_options
from sgdlab.monitor.sinks import Sink, SinkSet
from sgdlab.monitor.writer import RunWriter
from sgdlab.store import Store


class Monitor:
    """Measure gradient noise, noise scale and temperature while a user's loop trains.

    Args:
        model: the ``nn.Module`` being trained (also under ``DistributedDataParallel`` or
            ``torch.compile``: the measurements run on the module underneath).
        loss_fn: the loss, ``loss_fn(model(x), y)`` with ``reduction="mean"`` (or
            ``loss_fn(model(**batch))`` for dict batches with ``targets=None``).
        optimizer: the ``torch.optim`` optimizer (learning rate and momentum are read from
            its first parameter group, the gradient norm at its step); ``None``
            records no learning rate or temperature and reads ``.grad`` at ``mon.step``.
        store: a DuckDB path or :class:`~sgdlab.store.Store` (written by rank 0 only);
            ``None`` keeps the metrics in memory only (``Monitor.metrics``).
        every: cadence of the free metrics (loss, gradient norm, learning rate).
        noise_every: cadence of the noise statistics (one extra forward/backward each):
            ``"auto"`` (default) measures at step 0, then after at least
            :data:`AUTO_NOISE_EVERY` steps *and* once the loop has run for the last
            measurement's cost / :data:`NOISE_BUDGET` seconds (so that the measurements take
            ≤ 2% of the training time even on models whose per-sample pass is expensive);
            an integer k measures every k steps exactly; ``0`` turns them off.
        noise_mode: ``"auto"`` (default: the function being trained — BatchNorm as in
            training, dropout off: sampling noise only), ``"eval"`` (every layer in eval mode)
            or ``"train"`` (dropout noise included).
        population: dataset size N: each batch is then taken as distinct samples of N
            (without replacement), and the noise scale and temperature use the
            finite-population formulas.
        ema_beta: decay of the noise-scale EMAs.
        name: label stored with the run.
        flush_every: seconds between writes to the store (a crash loses at most this much).
        method: per-sample method forwarded to :func:`sgdlab.measure.noise.gradient_noise`
            (``"auto"``, ``"fast"``, ``"vmap"``, ``"loop"``).
        accumulation_steps: micro-batches per optimizer step (gradient accumulation): the
            effective batch is this × the batch passed to :meth:`step`.
        chunk_size: samples per forward/backward of the extra pass (memory bound).
        sinks: callables ``sink(step, scalars)`` called with each recorded row (e.g.
            :class:`sgdlab.integrations.TensorBoardSink`); one that raises is dropped with a
            warning.
        all_ranks: under DDP, every rank runs this Monitor: the ranks' local gradient norms
            are averaged (one small all-reduce per noise measurement, on every rank). Leave
            ``False`` when only some ranks create a Monitor.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Any,
        optimizer: torch.optim.Optimizer | None = None,
        store: str | Path | Store | None = None,
        every: int = 10,
        noise_every: int | Literal["auto"] = "auto",
        noise_mode: NoiseMode = "auto",
        population: int | None = None,
        ema_beta: float = 0.9,
        name: str | None = None,
        flush_every: float = 10.0,
        *,
        method: str = "auto",
        accumulation_steps: int = 1,
        chunk_size: int | None = None,
        sinks: Sequence[Sink] | None = None,
        all_ranks: bool = False,
    ) -> None:
        check_options(every, noise_every, flush_every, noise_mode, method, accumulation_steps,
               chunk_size)  # fmt: skip
        if not 0.0 <= ema_beta < 1.0:
            raise ValueError(f"ema_beta must be in [0, 1), got {ema_beta}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.module = unwrap(model)
        self.every, self.noise_every = every, noise_every
        self._noise_due = noise_every != 0  # whether the next mon.step measures the noise
        self._noise_last: tuple[int, float, float] | None = None  # (step, end time, cost s)
        self.noise_mode, self.population, self.method = noise_mode, population, method
        self.accumulation_steps, self.chunk_size = accumulation_steps, chunk_size
        self.name, self.flush_every, self.all_ranks = name, float(flush_every), all_ranks
        self.ddp = data_parallel(model)
        self.guard = Guard()
        self.sinks = SinkSet(sinks or ())
        dim = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        self._probe = NoiseProbe(
            loss_fn, optimizer, mode=noise_mode, population=population, method=method,
            chunk_size=chunk_size, beta=ema_beta, guard=self.guard, dim=dim, ddp=self.ddp,
            all_ranks=all_ranks,
        )  # fmt: skip
        self.run_id = uuid.uuid4().hex[:12]
        self.t = 0
        self._recorder = Recorder()
        self._store_arg = store
        self._writer: RunWriter | None = None
        self._tap: GradTap | None = None
        self._hook: LocalNormHook | None = None
        self._tap_seen = 0
        self._start = 0.0
        self._last_flush = 0.0
        self._state = "new"  # new → open → closed: one Monitor records one run
        self._row: dict[str, float] = {}

    # ------------------------------------------------------------- context
    @property
    def noise_scale(self) -> NoiseScaleEstimator:
        """The smoothed two-batch estimator (``noise_scale.b_simple`` is the recorded value)."""
        return self._probe.estimator

    @property
    def last_noise(self) -> Any:
        """The last noise measurement (:class:`~sgdlab.measure.noise.NoiseStats`)."""
        return self._probe.last

    @property
    def events(self) -> list[Event]:
        """Measurements turned off after a failure, and limitations noted, with reasons."""
        return list(self.guard.events)

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
        n_params = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        return {
            "kind": "monitor",
            "problem": {"name": type(self.module).__name__, "parameters": n_params},
            "model": repr(self.module)[:2000],
            "loss": repr(self.loss_fn),
            "optimizer": opt_cfg,
            "record": {
                "every": self.every, "noise_every": self.noise_every,
                "noise_mode": self.noise_mode, "method": self.method,
                "accumulation_steps": self.accumulation_steps,
                "world_size": 1 if self.ddp is None else self.ddp.world_size,
            },
        }  # fmt: skip

    def start(self) -> Monitor:
        """Start the run (what entering ``with`` does): insert it as ``running`` in the
        store (rank 0 only), attach the gradient tap to the optimizer and, under DDP, the
        local-norm communication hook. A Monitor records one run: starting it again raises
        ``RuntimeError``."""
        if self._state != "new":
            raise RuntimeError(
                f"this Monitor already recorded run {self.run_id} ({self._state}); create a new "
                "Monitor for another run"
            )
        self._start = time.perf_counter()
        self._last_flush = time.monotonic()
        if self._store_arg is not None:
            if self.ddp is not None and self.ddp.rank != 0:
                self.guard.note("store_rank", 0, f"rank {self.ddp.rank} does not write the store "
                                "(rank 0 is its one writer)", loud=False)  # fmt: skip
            else:
                writer = RunWriter(self._store_arg, self.run_id)
                writer.begin(self.config(), self.name)
                self._writer = writer
        if self.optimizer is not None:
            params = [p for p in self.module.parameters() if p.requires_grad]
            self._tap = self.guard.run("grad_tap", 0, GradTap, self.optimizer, params)
        if self.ddp is not None and self.noise_every != 0:
            self._hook = self.guard.run("ddp_hook", 0, LocalNormHook, self.ddp.ddp)
            self._probe.hook = self._hook
        self._arm(0)
        self._state = "open"
        return self

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(
            status="complete" if exc_type is None else "failed",
            error=None if exc is None else f"{exc_type.__name__}: {exc}",
        )

    def flush(self) -> None:
        """Append the rows and events recorded since the last write to the store now (one
        short transaction; :meth:`step` does it every ``flush_every`` seconds). If the store
        stays busy for a couple of seconds they wait for the next flush."""
        self._last_flush = time.monotonic()
        if self._writer is None:
            return
        events = self.guard.take_new()
        wall = time.perf_counter() - self._start
        self.guard.give_back(self._writer.flush(self.t, wall, events))

    def close(self, status: str = "complete", error: str | None = None) -> None:
        """Write what is left to the store, set the run's status and end it (once; a second
        call does nothing)."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._tap is not None:
            self._tap.remove()
        if self._hook is not None:
            self._hook.armed = False  # DDP cannot unregister a comm hook: it idles
        writer, self._writer = self._writer, None
        if writer is not None:
            wall = time.perf_counter() - self._start
            writer.finish(self.t, wall, self.guard.take_new(), status, error)

    # -------------------------------------------------------------- record
    def _add(self, name: str, value: float) -> None:
        value = float(value)
        self._recorder.add(name, self.t, value)
        self._row[name] = value
        if self._writer is not None:
            self._writer.add(name, self.t, value)

    @property
    def metrics(self) -> dict[str, tuple[Any, Any]]:
        """``name -> (steps [n], values [1, n])``, the engine's layout with one chain."""
        return self._recorder.result()

    def _arm(self, t: int) -> None:
        """Tell the hooks whether the backward/step before ``mon.step`` number t is recorded."""
        if self._tap is not None:
            self._tap.armed = t % self.every == 0
        if self._hook is not None:
            self._hook.armed = self._noise_due

    def step(
        self,
        inputs: Tensor | tuple[Tensor, ...] | dict[str, Any],
        targets: Tensor | None = None,
        loss: Tensor | float | None = None,
        *,
        batch_size: int | None = None,
    ) -> None:
        """Record this step (call once per optimizer step, after ``optimizer.step()``).

        ``inputs`` is what the model is called with: a tensor, a tuple of tensors, or a dict
        (``model(**inputs)``). ``batch_size`` declares the effective batch of this step (with
        gradient accumulation, or when the inputs are a micro-batch); by default it is
        ``accumulation_steps`` × the batch of ``inputs`` (× the DDP world size). Nothing
        raised inside a measurement reaches the loop: it warns once, is recorded with the
        run, and turns that measurement off."""
        if self._state != "open":
            self._begin_implicitly()
        t = self.t
        self._row = {}
        self._check_optimizer_stepped()
        if t % self.every == 0:
            self.guard.run("metrics", t, self._record_free, inputs, loss, batch_size)
        if self._noise_due and "noise" not in self.guard.off:
            start = time.perf_counter()
            self.guard.run("noise", t, self._record_noise, inputs, targets, batch_size)
            end = time.perf_counter()
            self._noise_last = (t, end, end - start)
        self.t += 1
        self._noise_due = self._schedule(self.t)
        self._arm(self.t)
        if self._row:
            self.sinks.emit(t, self._row)
        if self._writer is not None and time.monotonic() - self._last_flush >= self.flush_every:
            self.guard.run("store", t, self.flush)

    def _schedule(self, t: int) -> bool:
        """Whether step t measures the noise (decided before its backward: the DDP hook is
        armed by it)."""
        every = self.noise_every
        if every != "auto":
            return bool(every) and t % every == 0
        if self._noise_last is None:
            return t == 0
        last, end, cost = self._noise_last
        loop_time = time.perf_counter() - end
        return t - last >= AUTO_NOISE_EVERY and loop_time * NOISE_BUDGET >= cost

    def _effective_batch(self, inputs: Any, batch_size: int | None) -> int:
        if batch_size is not None:
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
            return batch_size
        world = 1 if self.ddp is None else self.ddp.world_size
        return batch_size_of(inputs) * self.accumulation_steps * world

    def _record_free(self, inputs: Any, loss: Any, batch_size: int | None) -> None:
        self._add("batch_size", self._effective_batch(inputs, batch_size))
        if loss is not None:
            self._add("loss", float(loss.detach()) if isinstance(loss, Tensor) else loss)
        self._add("grad_norm", self._step_grad_norm())
        if self.optimizer is not None:
            for i, group in enumerate(self.optimizer.param_groups):
                self._add("lr" if i == 0 else f"lr/group{i}", float(group["lr"]))

    def _step_grad_norm(self) -> float:
        """‖∇L‖ of this step: ``.grad`` as it is (the loop may call ``mon.step`` before or
        after ``optimizer.step()``), else — ``zero_grad()`` ran after the step — the value the
        tap read at the step."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        value = grad_norm(params)
        tapped = self._tap.take() if self._tap is not None else None
        if value > 0:
            return value
        if tapped is not None and tapped > 0:
            return tapped
        self.guard.note("grad_norm_missing", self.t, NO_GRAD_NOTE)
        return 0.0 if value != value else value

    def _check_optimizer_stepped(self) -> None:
        """Note a Monitor called more often than the optimizer steps (per micro-batch)."""
        tap = self._tap
        if tap is None:
            return
        if tap.steps == self._tap_seen and self.t > 0:
            self.guard.note("no_optimizer_step", self.t, NO_STEP_NOTE)
        self._tap_seen = tap.steps

    def _begin_implicitly(self) -> None:
        if self._state == "closed":
            raise RuntimeError(
                f"this Monitor is closed (run {self.run_id}); create a new Monitor for another run"
            )
        if self._store_arg is not None:
            warn(
                "Monitor.step() called outside `with Monitor(...)`: the run starts now; call "
                "mon.close() when training ends (until then it stays 'running'), or use `with`"
            )
        self.start()

    def _record_noise(self, inputs: Any, targets: Tensor | None, batch_size: int | None) -> None:
        batch = as_batch(self.module, inputs, targets)
        if batch.size < 2:
            return
        out = self._probe.measure(batch, self._effective_batch(inputs, batch_size), self.t)
        for name, value in out.items():
            self._add(name, value)

    # ------------------------------------------------------------- summary
    def summary(self) -> dict[str, float]:
        """Last recorded value of every metric."""
        return self._recorder.last()

    def advice(self) -> list[Advice]:
        """What to change, from what was measured (:func:`sgdlab.advice.advise`)."""
        last = self.summary()
        b = last.get("batch_size")
        return advise(self.metrics, batch_size=None if b is None else int(b), lr=last.get("lr"))
