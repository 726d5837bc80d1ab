"""Lightning: sgdlab's ``MonitorCallback`` on a LightningModule, scikit-learn's digits.

    .venv/bin/python examples/lightning_callback.py [--quick] [--store PATH]

The callback runs a :class:`sgdlab.Monitor` inside ``Trainer.fit``: once per optimizer step
it records loss, gradient norm (after clipping), learning rate, tr Σ, the noise scale and the
temperature, into the store and into the trainer's logger (here a CSV logger: see
``metrics.csv``, columns ``sgdlab/...``). ``--quick`` trains 40 steps (seconds) instead of
5 epochs. Needs ``pip install lightning``.
"""

from __future__ import annotations

import argparse
import tempfile

import lightning.pytorch as L
import torch
from sklearn.datasets import load_digits
from torch import nn

from sgdlab.integrations.lightning import MonitorCallback
from sgdlab.store import default_store_path


class DigitsMLP(L.LightningModule):
    """An MLP on the 64 pixels; ``loss_fn`` is what the callback measures with."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        self.loss_fn = nn.CrossEntropyLoss()
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(default_store_path()))
    parser.add_argument("--quick", action="store_true", help="40 steps: a run of seconds")
    parser.add_argument("--logs", default=None, help="folder of the CSV logs (default: a temp)")
    args = parser.parse_args(argv)

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    L.seed_everything(0, verbose=False)  # your own script: the global RNG is yours to seed
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True
    )
    callback = MonitorCallback(store=args.store, every=5, noise_every=10, population=len(x),
                               name="lightning-digits")  # fmt: skip
    logs = args.logs or tempfile.mkdtemp(prefix="sgdlab-lightning-")
    trainer = L.Trainer(
        max_epochs=5, max_steps=40 if args.quick else -1, callbacks=[callback],
        logger=L.loggers.CSVLogger(logs, name="digits"), gradient_clip_val=1.0,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=5, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(DigitsMLP(), loader)

    mon = callback.monitor
    last = mon.summary()
    print(f"run {mon.run_id}: {mon.t} optimizer steps, final loss {last['loss']:.3f}; noise "
          f"scale B_simple ≈ {last['noise_scale']:.3g} at batch 32; temperature "
          f"{last['temperature']:.3g}")  # fmt: skip
    for item in mon.advice():
        print(f"advice ({item.kind}): {item.message}")
    print(f"logger: {trainer.logger.experiment.metrics_file_path} (columns sgdlab/...)")
    print(f"next: sgdlab show {mon.run_id} --store {args.store}")
    return {"run_id": mon.run_id, "summary": last,
            "metrics_file": trainer.logger.experiment.metrics_file_path}  # fmt: skip


if __name__ == "__main__":
    main()
