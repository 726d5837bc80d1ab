"""Monitor overhead: a full training run with and without ``sgdlab.Monitor``, in one run.

MLP 784–128–10 on synthetic data, b = 256, SGD with momentum, ``steps`` steps (CPU,
float32). The Monitor runs at its default cadence (metrics every 10 steps, noise
statistics every 100) and keeps its metrics in memory (store writes happen once at the end
and are timed separately). Repeats alternate plain/monitored runs; reports medians and the
overhead ratio (target ≤ 1.10). Writes ``benchmarks/results/monitor.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import sgdlab

RESULTS = Path(__file__).resolve().parent / "results"


def train(steps: int, monitor: bool, store: Path | None = None) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 784, generator=g)
    y = torch.randint(0, 10, (4096,), generator=g)
    torch.manual_seed(0)  # benchmark script: initial weights
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    mon = sgdlab.Monitor(model, loss_fn, opt, store=store) if monitor else None
    start = time.perf_counter()
    if mon is not None:
        mon.__enter__()
    for _ in range(steps):
        idx = torch.randint(0, 4096, (256,), generator=g)
        xb, yb = x[idx], y[idx]
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(xb, yb, loss)
    if mon is not None:
        mon.__exit__(None, None, None)
    return time.perf_counter() - start


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    train(50, False)
    train(50, True)
    plain, watched = [], []
    for _ in range(args.repeats):
        plain.append(train(args.steps, False))
        watched.append(train(args.steps, True))
    with tempfile.TemporaryDirectory() as tmp:
        stored = train(args.steps, True, Path(tmp) / "m.duckdb")
    p, w = statistics.median(plain), statistics.median(watched)
    out = {
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "seconds": {"plain": p, "monitor": w, "monitor_with_store": stored},
        "overhead": w / p,
        "overhead_with_store": stored / p,
    }
    print(f"plain {p:.2f}s  monitor {w:.2f}s  (+store {stored:.2f}s)")
    print(f"monitor/plain = {w / p:.3f} (target <= 1.10); with store {stored / p:.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monitor.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
