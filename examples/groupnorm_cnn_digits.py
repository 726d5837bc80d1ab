"""A GroupNorm CNN on scikit-learn's 8×8 digits, with your own loop, watched by sgdlab.

    .venv/bin/python examples/groupnorm_cnn_digits.py [--quick] [--store PATH]

GroupNorm normalizes each sample by itself, so unlike a train-mode BatchNorm the network's
loss is a plain mean over samples and every per-sample gradient is defined: the Monitor
measures tr Σ, the noise scale and the temperature of exactly the function being trained.
The loop uses SGD with momentum 0.9 and a cosine schedule; the batches are drawn without
replacement from the N = 1797 digits (``population=N``: finite-population formulas).
``--quick`` trains one epoch (seconds) instead of 15. Then ``sgdlab show RUN_ID``.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import sgdlab
from sgdlab.store import default_store_path


def make_model() -> nn.Module:
    """Two 3×3 conv layers, each with GroupNorm, ReLU and 2×2 max pooling; a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(default_store_path()))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="one epoch: a run of seconds")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args(argv)
    epochs = 1 if args.quick else args.epochs

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]  # [N, 1, 8, 8]
    y = torch.tensor(digits.target, dtype=torch.long)
    torch.manual_seed(0)  # your own script: the global RNG is yours to seed
    model = make_model()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.batch_size, shuffle=True,
        drop_last=True,
    )  # fmt: skip
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))

    with sgdlab.Monitor(model, loss_fn, optimizer, store=args.store, every=5, noise_every=10,
                        population=len(x), name="digits-groupnorm-cnn") as mon:  # fmt: skip
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                mon.step(xb, yb, loss)
                schedule.step()

    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    last = mon.summary()
    print(f"run {mon.run_id}: {mon.t} steps, final loss {last['loss']:.3f}, training "
          f"accuracy {accuracy:.1%}")  # fmt: skip
    print(f"gradient noise tr Σ = {last['trace_cov']:.3g}; noise scale B_simple ≈ "
          f"{last['noise_scale']:.3g} at batch {args.batch_size}; temperature T ≈ "
          f"{last['temperature']:.3g}")  # fmt: skip
    for item in mon.advice():
        print(f"advice ({item.kind}): {item.message}")
    print(f"next: sgdlab show {mon.run_id} --store {args.store}")
    return {"run_id": mon.run_id, "summary": last, "accuracy": accuracy}


if __name__ == "__main__":
    main()
