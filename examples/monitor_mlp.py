"""Train an MLP on scikit-learn's digits with your own loop, and let sgdlab watch it.

    .venv/bin/python examples/monitor_mlp.py [--store sgdlab-results/sgdlab.duckdb]

Then ``sgdlab runs`` lists the run and ``sgdlab show RUN_ID`` summarizes it.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import sgdlab
from sgdlab.store import default_store_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(default_store_path()))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    torch.manual_seed(0)  # your own script: the global RNG is yours to seed
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.batch_size, shuffle=True
    )

    with sgdlab.Monitor(
        model, loss_fn, optimizer, store=args.store, population=len(x), name="digits-mlp"
    ) as mon:
        for _ in range(args.epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                mon.step(xb, yb, loss)

    last = mon.summary()
    print(f"run {mon.run_id}: {mon.t} steps, final loss {last['loss']:.4f}")
    print(
        f"gradient noise tr Σ = {last['trace_cov']:.3g}; noise scale B_simple ≈ "
        f"{last['noise_scale']:.1f} (smoothed over the run; the last batch alone gave "
        f"{last['b_simple']:.1f}) at batch {args.batch_size}; temperature T ≈ "
        f"{last['temperature']:.3g}"
    )
    print(f"store: {args.store} — next: sgdlab show {mon.run_id} --store {args.store}")


if __name__ == "__main__":
    main()
