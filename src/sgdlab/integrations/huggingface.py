"""A Hugging Face ``TrainerCallback`` that runs a :class:`~sgdlab.Monitor` inside
``Trainer.train``.

::

    from sgdlab.integrations.huggingface import MonitorCallback

    trainer = Trainer(model, args, train_dataset=data,
                      callbacks=[MonitorCallback(store="runs.duckdb", noise_every=50)])
    trainer.train()

What it records is what :class:`~sgdlab.Monitor` records (loss, gradient norm, learning rate,
tr Σ, noise scale, temperature), once per optimizer step, into the store (a run of kind
``monitor``) and to the Monitor's ``sinks``.

**When.** At ``on_optimizer_step``, i.e. right after ``optimizer.step()`` and before the
Trainer steps the learning-rate schedule and zeroes the gradients: ``.grad`` still holds the
gradient the step used — of every accumulated micro-batch, after the Trainer's clipping to
``max_grad_norm`` (which comes before ``on_pre_optimizer_step``) — the learning rate is the
step's own, and the noise statistics are measured at the parameters after the step, the
Monitor's own convention (``mon.step`` after ``optimizer.step()``: the Monitor reads the
step's gradient norm in an optimizer hook during the step, so calling it at
``on_pre_optimizer_step`` would report the previous step's).

**The batch** is taken from the trainer as the model sees it: a forward pre-hook on the model
keeps the keyword arguments of every training forward (``model(**inputs)``) since the step
began (``on_step_begin``), and their ``loss``. With ``gradient_accumulation_steps = k`` the k
micro-batches are concatenated (or, when they cannot be joined — dynamic padding to different
lengths — the last one is measured), with ``batch_size`` = all k. The step's loss is the
micro-batches' mean loss (their sum when the Trainer normalizes by the step's token count,
``num_items_in_batch``).

**The function measured** is the model's, through a small adapter ``forward(*tensors) →
logits`` over the batch's tensors other than ``labels``, with the loss of the model's task:

* causal language models (labels shaped like ``input_ids``; GPT-2 and the ``…ForCausalLM``
  classes): next-token cross-entropy, ``logits[:, :-1]`` against ``labels[:, 1:]``,
  ``ignore_index=-100``, mean over the predicted tokens — the loss these models compute;
* sequence classification (labels ``[B]``): cross-entropy, mean over the batch.

Per-sample quantities are per sequence. The token mean over a batch equals the mean over its
sequences of each sequence's own token mean only when every sequence has the same number of
labelled tokens (no padding, or equal padding); with padding, see the per-sample statistics'
handling of ``ignore_index`` in :mod:`sgdlab.measure.noise`. Another task: pass ``loss_fn``
(``loss_fn(logits, labels)``, ``reduction="mean"``).

**The end.** ``on_train_end`` marks the run ``complete``. The Trainer has no hook for a
``train()`` that raises: then call ``callback.close("failed", error=...)`` (else the run stays
``running``, shown as stale once the process ends).

Needs ``transformers`` (and ``accelerate`` for its ``Trainer``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sgdlab.integrations._batches import batch_len, join
from sgdlab.integrations._deps import require
from sgdlab.monitor import Monitor
from sgdlab.store import Store

_tf = require("transformers", "sgdlab.integrations.huggingface")

__all__ = ["LogitsOf", "MonitorCallback", "causal_lm_loss", "classification_loss"]

#: keyword arguments of a training forward that are not part of the batch
NOT_BATCH = ("num_items_in_batch", "return_dict", "use_cache", "output_attentions",
             "output_hidden_states")  # fmt: skip


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Next-token cross-entropy: ``logits[:, :-1]`` against ``labels[:, 1:]``, positions
    labelled -100 ignored, mean over the others (``reduction="mean"``)."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                           ignore_index=-100)  # fmt: skip


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over the batch's sequences, mean (``reduction="mean"``)."""
    return F.cross_entropy(logits.float(), labels)


class LogitsOf(nn.Module):
    """The model as the Monitor measures it: ``forward(*tensors)`` calls
    ``model(**dict(zip(keys, tensors)))`` and returns its logits. It holds the model's own
    parameters (no copy)."""

    def __init__(self, model: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.keys = model, keys
        takes = inspect.signature(model.forward).parameters
        self.extra = {"use_cache": False} if "use_cache" in takes else {}  # no KV cache built

    def forward(self, *tensors: Tensor) -> Tensor:
        out = self.model(**dict(zip(self.keys, tensors, strict=True)), **self.extra)
        return out.logits if hasattr(out, "logits") else out[0]


def _task_loss(model: nn.Module, inputs: dict[str, Any]) -> Callable[[Tensor, Tensor], Tensor]:
    labels, ids = inputs.get("labels"), inputs.get("input_ids")
    if not isinstance(labels, Tensor):
        raise ValueError("the batch has no 'labels' tensor; pass loss_fn and give the batches "
                         "labels")  # fmt: skip
    name = type(model).__name__
    if labels.dim() == 1:
        return classification_loss
    if (
        isinstance(ids, Tensor)
        and labels.shape == ids.shape
        and (
            name.endswith(("ForCausalLM", "LMHeadModel")) or getattr(model.config, "is_decoder", 0)
        )
    ):
        return causal_lm_loss
    shape = tuple(labels.shape)
    raise ValueError(f"MonitorCallback cannot tell the loss of {name} (labels {shape}); pass "
                     "loss_fn=lambda logits, labels: ... with reduction='mean'")  # fmt: skip


class MonitorCallback(_tf.TrainerCallback):
    """Measure gradient noise, noise scale and temperature while ``Trainer.train`` trains.

    Args:
        store: a DuckDB path or :class:`~sgdlab.store.Store`; ``None`` keeps the metrics in
            memory (``callback.monitor.metrics``).
        loss_fn: ``loss_fn(logits, labels)`` with ``reduction="mean"``; ``None``: the loss of
            the model's task (causal LM or sequence classification, see the module).
        **monitor_kwargs: passed to :class:`~sgdlab.Monitor` (``every``, ``noise_every``,
            ``population``, ``name``, ``sinks``, …).
    """

    def __init__(
        self,
        *,
        store: str | Path | Store | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        **monitor_kwargs: Any,
    ) -> None:
        self.store, self.loss_fn, self.monitor_kwargs = store, loss_fn, monitor_kwargs
        self.monitor: Monitor | None = None
        self._model: nn.Module | None = None
        self._optimizer: Any = None
        self._handles: list[Any] = []
        self._micro: list[dict[str, Any]] = []  # the micro-batches of this step
        self._losses: list[Tensor] = []
        self._measuring = False
        self._broken = False
        self._summed = False  # the Trainer normalizes by the step's token count

    # ------------------------------------------------------------ capture
    def _keep_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._measuring or not module.training or not torch.is_grad_enabled():
            return  # the Monitor's own pass, evaluation, generation
        batch = {k: v for k, v in kwargs.items() if isinstance(v, Tensor) and k not in NOT_BATCH}
        if args and isinstance(args[0], Tensor):
            batch["input_ids"] = args[0]
        self._micro.append(batch)
        self._summed = "num_items_in_batch" in kwargs

    def _keep_loss(self, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        if self._measuring or not module.training or not torch.is_grad_enabled():
            return
        loss = getattr(out, "loss", None)
        if isinstance(loss, Tensor):
            self._losses.append(loss.detach())

    # ------------------------------------------------------------ lifecycle
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._model is not None:
            raise RuntimeError("MonitorCallback records one train(); create a new callback")
        model, optimizer = kwargs["model"], kwargs.get("optimizer")
        self._model = model
        # accelerate's AcceleratedOptimizer wraps the torch optimizer: the Monitor reads the
        # learning rate and momentum of the optimizer underneath
        self._optimizer = getattr(optimizer, "optimizer", optimizer)
        self._handles = [
            model.register_forward_pre_hook(self._keep_inputs, with_kwargs=True),
            model.register_forward_hook(self._keep_loss, with_kwargs=True),
        ]

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._micro, self._losses = [], []

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        micro, losses = self._micro, self._losses
        self._micro, self._losses = [], []
        if self._broken or not micro:
            return
        try:
            batch, _ = join(micro)
            if self.monitor is None:
                self._start(batch)
            assert self.monitor is not None
            keys = self.monitor.model.keys
            inputs = tuple(batch[k] for k in keys)
            total = sum(batch_len(m) for m in micro)
            loss = None
            if losses:
                loss = float(sum(losses) if self._summed else sum(losses) / len(losses))
        except Exception as exc:  # an unexpected batch: never break training
            self._broken = True
            warnings.warn(f"MonitorCallback: cannot read the step's batch ({type(exc).__name__}: "
                          f"{exc}); monitoring stops, training goes on", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
            return
        self._measuring = True
        try:
            self.monitor.step(inputs, batch.get("labels"), loss, batch_size=total)
        finally:
            self._measuring = False

    def _start(self, batch: dict[str, Any]) -> None:
        assert self._model is not None
        keys = tuple(k for k in batch if k != "labels")
        loss_fn = self.loss_fn or _task_loss(self._model, batch)
        kwargs = dict(self.monitor_kwargs)
        kwargs.setdefault("name", type(self._model).__name__)
        self.monitor = Monitor(LogitsOf(self._model, keys), loss_fn, self._optimizer,
                               store=self.store, **kwargs)  # fmt: skip
        self.monitor.start()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close("complete")

    def close(self, status: str = "complete", error: str | None = None) -> None:
        """End the run (``on_train_end`` does, with ``complete``) and remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.monitor is not None:
            self.monitor.close(status, error=error)
