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
  :func:`sgdlab.measure.noise.gradient_noise` at the parameters *after* the optimizer step:
  ``trace_cov`` tr Σ̂ (per-sample gradient covariance, loss with ``reduction="mean"``),
  ``trace_cov_se``, ``grad_norm_sq`` |ḡ|², ``b_simple`` = tr Σ̂ / (|ḡ|² − tr Σ̂/b) (bias-
  corrected; from *this batch alone*, so noisy from one measurement to the next),
  ``noise_scale`` (the McCandlish et al. 2018 two-batch estimator of the same B_simple,
  smoothed by bias-corrected EMAs over the run: the value to act on, and the one
  :meth:`Monitor.advice` uses), ``mean_gsnr`` and ``temperature``
  T = η/(1−m)·(tr Σ/d)/(2b) (convention of :mod:`sgdlab.measure.noise.thermal`, b the
  effective batch: ``accumulation_steps`` × the batch × the DDP world size), and
  ``noise_scale_lower``, a 95% lower bound on the noise scale (:mod:`sgdlab.monitor.noise`).
  ``noise_scale`` is NaN while the smoothed |G|² estimate is ≤ 0: the gradient signal is
  below the noise at this batch — the noise scale exceeds what the batch resolves — and the
  reason is recorded with the run; ``noise_scale_lower`` then says how large it is at least.

It measures the function being trained (``noise_mode="auto"``): a model with BatchNorm in
train mode, where per-sample gradients are not defined, is measured by the two-batch
estimator over micro-batches in train mode (:func:`sgdlab.measure.noise.gradient_noise`, one
warning);
dropout is off (sampling noise only; ``noise_mode="train"`` includes it). The measurement
runs on the module under DDP / ``torch.compile`` wrappers (the user's parameter names, no
collective) and outside ``autocast`` (in the parameters' dtype). Dict batches
(``model(**batch)``) are supported. Under DDP (:mod:`sgdlab.distributed`) the noise scale's
two batches are this rank's gradient and the all-reduced one, read during the user's own
backward; rank 0 alone writes the store.

It never breaks training: an exception inside a measurement (an unsupported layer or loss, a
store error, a sink) warns once, is recorded with the run (the store's ``measurements`` table:
``monitor.off/<measurement>``, with the message) and turns that measurement off; the rest goes
on. Limitations are recorded the same way (``monitor.note/<topic>``) and listed in
:attr:`Monitor.events`. ``grad_norm`` is read from ``.grad`` at ``mon.step`` (called before or
after ``optimizer.step()``) or, when ``zero_grad()`` follows the step, by an optimizer step
post-hook (after clipping, accumulation and a closure's backward).
Each recorded row also goes to the ``sinks`` (e.g. live TensorBoard scalars).

It never changes the trajectory: the extra pass runs under ``torch.random.fork_rng`` (the
global RNG state is restored, so the user's dropout masks are unchanged), and the model's
modes, buffers (BatchNorm running statistics) and ``.grad`` are restored.
:meth:`Monitor.advice` turns the measurements into advice (batch size against the noise
scale, clipping, learning rate).

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

from sgdlab.monitor.core import Monitor
from sgdlab.monitor.guard import Event
from sgdlab.monitor.writer import FLUSH_TIMEOUT

__all__ = ["FLUSH_TIMEOUT", "Event", "Monitor"]
