"""The Hugging Face callback end to end: a tiny GPT-2 built from a config trains under
``Trainer.train`` with the callback; the run lands in the store, the batch measured is the
trainer's own (its loss and gradients equal what the Trainer computed at that step), the
gradient is the clipped one, and the trajectory is the same, bit for bit, as without the
callback."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _optional import need, needs_monitor_interface
from sgdlab.measure.noise import gradient_noise
from sgdlab.store import Store

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 6
CONTEXT, MAX_NORM = 16, 0.5


pytestmark = [needs_monitor_interface, pytest.mark.xdist_group("huggingface")]


@pytest.fixture(scope="module")
def tf():
    need("accelerate")
    return need("transformers", "transformers accelerate")


class Windows(torch.utils.data.Dataset):
    """Character windows of the text: ``input_ids`` and ``labels`` (the model shifts them)."""

    def __init__(self):
        self.chars = sorted(set(TEXT))
        self.ids = torch.tensor([self.chars.index(c) for c in TEXT])

    def __len__(self):
        return len(self.ids) - CONTEXT

    def __getitem__(self, i):
        w = self.ids[i : i + CONTEXT]
        return {"input_ids": w, "labels": w.clone()}


def _train(tf, tmp_path, callbacks, steps=6, accumulation=1):
    data = Windows()
    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=len(data.chars), n_positions=CONTEXT, n_embd=32,
                           n_layer=2, n_head=2)  # fmt: skip
    model = tf.GPT2LMHeadModel(config)
    args = tf.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=4,
        gradient_accumulation_steps=accumulation, learning_rate=3e-3, max_grad_norm=MAX_NORM,
        logging_steps=1, save_strategy="no", report_to=[], seed=0, data_seed=0, use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True, lr_scheduler_type="linear",
    )  # fmt: skip
    trainer = tf.Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    trainer.train()
    return model, trainer


def _reference(tf):
    """The clipped gradient's norm and the learning rate at each ``on_pre_optimizer_step``,
    and at ``on_optimizer_step`` (after the Monitor's) the trace of Σ of the batch the model
    last saw (through a hook of its own on the model) at the parameters after the step."""
    from sgdlab.integrations.huggingface import LogitsOf, causal_lm_loss

    out = {"grad_norm": [], "lr": [], "trace": [], "loss": []}
    seen = {}

    class Ref(tf.TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            def keep(module, a, kwargs, output):
                if module.training and torch.is_grad_enabled() and "labels" in kwargs:
                    seen["batch"], seen["loss"] = kwargs, float(output.loss.detach())

            model.register_forward_hook(keep, with_kwargs=True)

        def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kw):
            out["grad_norm"].append(math.sqrt(sum(
                float(p.grad.double().pow(2).sum()) for p in model.parameters()
                if p.grad is not None)))  # fmt: skip
            out["lr"].append(optimizer.param_groups[0]["lr"])
            out["loss"].append(seen["loss"])

        def on_optimizer_step(self, args, state, control, model=None, **kw):
            b = seen["batch"]
            with torch.random.fork_rng():  # as the Monitor: the training's RNG untouched
                stats = gradient_noise(LogitsOf(model, ("input_ids",)), causal_lm_loss,
                                       b["input_ids"], b["labels"])  # the Monitor's default
            out["trace"].append(stats.trace_cov)

    return Ref(), out


@pytest.mark.slow
def test_trains_records_and_leaves_the_trajectory_unchanged(tf, tmp_path):
    from sgdlab.integrations.huggingface import MonitorCallback

    store = tmp_path / "s.duckdb"
    cb = MonitorCallback(store=store, every=1, noise_every=2, name="hf-gpt2")
    ref, expected = _reference(tf)
    model, trainer = _train(tf, tmp_path, [cb, ref])
    plain, plain_trainer = _train(tf, tmp_path / "plain", [])
    for (name, a), b in zip(model.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert logged == [h["loss"] for h in plain_trainer.state.log_history if "loss" in h]

    db = Store(store, read_only=True)
    run = db.runs()[0]
    assert (run["status"], run["name"], run["steps"]) == ("complete", "hf-gpt2", 6)
    m = db.metrics(run["run_id"])
    np.testing.assert_array_equal(m["loss"][0], np.arange(6))
    np.testing.assert_allclose(m["loss"][1][0], expected["loss"], rtol=1e-7)
    # the clipped gradient the step uses; the Trainer's own (pre-clipping) norms are logged
    np.testing.assert_allclose(m["grad_norm"][1][0], expected["grad_norm"], rtol=1e-12)
    hf_norms = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    np.testing.assert_allclose(m["grad_norm"][1][0], np.minimum(hf_norms, MAX_NORM), rtol=1e-5)
    np.testing.assert_array_equal(m["lr"][1][0], expected["lr"])  # linear decay, this step's
    assert expected["lr"][0] == 3e-3 and expected["lr"][-1] < expected["lr"][0]
    np.testing.assert_array_equal(m["batch_size"][1][0], 4)
    # the per-sample statistics of the trainer's batch at the same parameters
    np.testing.assert_array_equal(m["trace_cov"][0], [0, 2, 4])
    np.testing.assert_allclose(m["trace_cov"][1][0], expected["trace"][::2], rtol=1e-5)


@pytest.mark.slow
def test_gradient_accumulation_measures_the_whole_step(tf, tmp_path):
    from sgdlab.integrations.huggingface import MonitorCallback

    cb = MonitorCallback(every=1, noise_every=1)
    _train(tf, tmp_path, [cb], steps=3, accumulation=2)
    m = cb.monitor.metrics
    np.testing.assert_array_equal(m["loss"][0], np.arange(3))
    np.testing.assert_array_equal(m["batch_size"][1][0], 8)  # 2 micro-batches of 4, joined
    assert np.isfinite(m["trace_cov"][1][0]).all() and np.isfinite(m["loss"][1][0]).all()
    assert cb.monitor.last_noise is not None


def test_a_model_whose_loss_cannot_be_told_stops_monitoring_not_training(tf, tmp_path):
    from sgdlab.integrations.huggingface import MonitorCallback

    cb = MonitorCallback(every=1, noise_every=1)
    data = Windows()

    class NoLabels(Windows):
        def __getitem__(self, i):
            return {"input_ids": data[i]["input_ids"]}

    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(data.chars), n_positions=CONTEXT,
                                             n_embd=16, n_layer=1, n_head=2))  # fmt: skip

    class WithLoss(tf.Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kw):
            out = model(**inputs)
            loss = out.logits.float().logsumexp(-1).mean()
            return (loss, out) if return_outputs else loss

    args = tf.TrainingArguments(output_dir=str(tmp_path / "o"), max_steps=2, report_to=[],
                                per_device_train_batch_size=4, use_cpu=True,
                                save_strategy="no", disable_tqdm=True)  # fmt: skip
    with pytest.warns(RuntimeWarning, match="monitoring stops, training goes on"):
        WithLoss(model=model, args=args, train_dataset=NoLabels(), callbacks=[cb]).train()
    assert cb.monitor is None
