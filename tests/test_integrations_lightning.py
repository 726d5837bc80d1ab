"""The Lightning callback end to end: a tiny model built from a config trains under
``Trainer.fit`` with the callback; the run lands in the store and in the trainer's logger,
its numbers equal independent references at the same parameters, and the trajectory is the
same, bit for bit, as without the callback."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn

from _optional import need, needs_monitor_interface
from sgdlab.measure.noise import gradient_noise
from sgdlab.store import Store

CONFIG = {"inputs": 6, "hidden": 16, "classes": 3, "n": 96, "batch": 8, "lr": 0.2, "seed": 3}


pytestmark = [needs_monitor_interface, pytest.mark.xdist_group("lightning")]


@pytest.fixture(scope="module")
def L():
    return need("lightning.pytorch", "lightning")


def _data(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn(cfg["n"], cfg["inputs"], generator=gen)
    noise = torch.randn(cfg["n"], cfg["classes"], generator=gen)
    return x, (x[:, : cfg["classes"]] + 0.5 * noise).argmax(1)


def _module(L, cfg, fail_at=None):
    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(cfg["inputs"], cfg["hidden"]), nn.Tanh(),
                                     nn.Linear(cfg["hidden"], cfg["classes"]))  # fmt: skip
            self.loss_fn = nn.CrossEntropyLoss()
            self.losses = []

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if fail_at is not None and batch_idx == fail_at:
                raise RuntimeError("boom in training_step")
            loss = self.loss_fn(self(batch[0]), batch[1])
            self.losses.append(float(loss.detach()))
            return loss

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=cfg["lr"], momentum=0.5)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return Net()


class Reference:
    """A plain callback after the Monitor's: the learning rate of each optimizer step (read
    before it), the gradient it used (after clipping: still in ``.grad`` at the batch's end)
    and the per-sample statistics at the parameters after the step."""

    def __init__(self, L, loss_fn):
        outer = self

        class Ref(L.Callback):
            def on_before_optimizer_step(self, trainer, pl_module, optimizer):
                outer.lr.append(optimizer.param_groups[0]["lr"])

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                g = [p.grad for p in pl_module.parameters()]
                outer.grad_norm.append(math.sqrt(sum(float(v.double().pow(2).sum()) for v in g)))
                with torch.random.fork_rng():  # as the Monitor: the training's RNG untouched
                    stats = gradient_noise(pl_module, loss_fn, batch[0], batch[1])
                outer.trace.append(stats.trace_cov)

        self.grad_norm, self.lr, self.trace = [], [], []
        self.callback = Ref()


def _fit(L, tmp_path, callbacks, cfg=CONFIG, steps=9, fail_at=None, **trainer_kw):
    L.seed_everything(cfg["seed"], verbose=False)
    module = _module(L, cfg, fail_at)
    x, y = _data(cfg)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=cfg["batch"], shuffle=True)  # fmt: skip
    trainer = L.Trainer(max_steps=steps, callbacks=callbacks, accelerator="cpu", devices=1,
                        logger=L.loggers.CSVLogger(tmp_path / "logs", name="t"),
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1, **trainer_kw)  # fmt: skip
    trainer.fit(module, loader)
    return module, trainer


@pytest.fixture(scope="module")
def fitted(L, tmp_path_factory):
    """One fit with the callback (and the reference after it), one without."""
    from sgdlab.integrations.lightning import MonitorCallback

    tmp = tmp_path_factory.mktemp("lightning")
    store = tmp / "s.duckdb"
    ref = Reference(L, nn.CrossEntropyLoss())
    cb = MonitorCallback(store=store, every=1, noise_every=2, name="lightning-test")
    with_cb, trainer = _fit(L, tmp, [cb, ref.callback], gradient_clip_val=0.5)
    plain, _ = _fit(L, tmp / "plain", [], gradient_clip_val=0.5)
    db = Store(store, read_only=True)
    run = db.runs()[0]
    return {"with": with_cb, "plain": plain, "trainer": trainer, "ref": ref, "run": run,
            "metrics": db.metrics(run["run_id"])}  # fmt: skip


def test_trains_records_logs_and_leaves_the_trajectory_unchanged(fitted):
    with_cb, plain, ref, m = fitted["with"], fitted["plain"], fitted["ref"], fitted["metrics"]
    for (name, a), b in zip(with_cb.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert with_cb.losses == plain.losses

    run = fitted["run"]
    assert (run["status"], run["kind"], run["name"], run["steps"]) == (
        "complete", "monitor", "lightning-test", 9)  # fmt: skip
    np.testing.assert_array_equal(m["loss"][0], np.arange(9))
    np.testing.assert_allclose(m["loss"][1][0], with_cb.losses, rtol=1e-7)  # float32 → float64
    np.testing.assert_array_equal(m["lr"][1][0], ref.lr)  # the step's own, not the next one's
    assert ref.lr == [0.2] * 3 + [0.1] * 3 + [0.05] * 3  # StepLR(step_size=3, gamma=0.5)
    np.testing.assert_array_equal(m["trace_cov"][0], np.arange(0, 9, 2))
    # the same statistics (the Monitor's default mode) of the same batch at the same
    # parameters: equal up to float32 rounding of the sums
    np.testing.assert_allclose(m["trace_cov"][1][0], ref.trace[::2], rtol=1e-5)
    np.testing.assert_array_equal(m["batch_size"][1][0], 8)

    # through the trainer's logger: one row per optimizer step, at the step's index
    trainer = fitted["trainer"]
    rows = list(csv.DictReader(open(trainer.logger.experiment.metrics_file_path)))
    logged = {int(r["step"]): float(r["sgdlab/loss"]) for r in rows if r.get("sgdlab/loss")}
    assert sorted(logged) == list(range(9))
    np.testing.assert_allclose([logged[s] for s in range(9)], m["loss"][1][0], rtol=1e-6)
    traces = [float(r["sgdlab/trace_cov"]) for r in rows if r.get("sgdlab/trace_cov")]
    np.testing.assert_allclose(traces, m["trace_cov"][1][0], rtol=1e-6)


def test_grad_norm_is_the_clipped_gradient_of_the_step(fitted):
    ref, m = fitted["ref"], fitted["metrics"]
    assert max(ref.grad_norm) <= 0.5 * (1 + 1e-6) and min(ref.grad_norm) < 0.5  # clipped
    np.testing.assert_allclose(m["grad_norm"][1][0], ref.grad_norm, rtol=1e-12)


@pytest.mark.slow
def test_gradient_accumulation_records_once_per_optimizer_step(L, tmp_path):
    from sgdlab.integrations.lightning import MonitorCallback

    cb = MonitorCallback(nn.CrossEntropyLoss(), every=1, noise_every=1, log=False)
    module, _ = _fit(L, tmp_path, [cb], steps=4, accumulate_grad_batches=3)
    m = cb.monitor.metrics
    np.testing.assert_array_equal(m["loss"][0], np.arange(4))  # 4 optimizer steps, 12 batches
    np.testing.assert_array_equal(m["batch_size"][1][0], 24)  # 3 micro-batches of 8
    step_losses = np.asarray(module.losses).reshape(4, 3).mean(axis=1)
    np.testing.assert_allclose(m["loss"][1][0], step_losses, rtol=1e-6)
    assert np.isfinite(m["trace_cov"][1][0]).all()


def test_a_failing_fit_is_stored_as_failed(L, tmp_path):
    from sgdlab.integrations.lightning import MonitorCallback

    store = tmp_path / "s.duckdb"
    cb = MonitorCallback(nn.CrossEntropyLoss(), store=store, every=1, noise_every=0)
    with pytest.raises(RuntimeError, match="boom"):
        _fit(L, tmp_path, [cb], fail_at=3)
    run = Store(store, read_only=True).runs()[0]
    assert run["status"] == "failed" and "boom in training_step" in run["error"]


def test_a_module_without_a_loss_is_one_clear_error(L, tmp_path):
    from sgdlab.integrations.lightning import MonitorCallback

    class NoLoss(L.LightningModule):
        pass

    with pytest.raises(ValueError, match="needs loss_fn"):
        MonitorCallback().on_train_start(L.Trainer(logger=False), NoLoss())
