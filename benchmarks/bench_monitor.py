"""Monitor overhead at its default cadence: the same training loop with and without
``sgdlab.Monitor``, on a tiny GPT, a BatchNorm CNN and an LSTM, ratios in one run.

Models (CPU, float32): a 2-layer GPT (d = 128, T = 64, b = 32, AdamW; ``_tiny_gpt.py``), a
BatchNorm CNN (two conv–BN–ReLU blocks on 3×32×32, b = 64, SGD + momentum; measured by the
micro-batch route) and an LSTM classifier (32 → 128, T = 32, b = 32, SGD + momentum;
per-sample route of 14-measure for recurrent layers). The Monitor runs at its defaults
(free metrics every 10 steps; noise statistics at step 0, then every 100 steps or rarer,
within a 2% time budget) with metrics in memory; the store
is timed separately once (``monitor_with_store``). Repeats alternate plain and monitored runs
of ``--steps`` steps with the same data; the reported ratio is the median total time of the
monitored runs over the plain ones (target ≤ 1.05), also for the steady state after the first
noise measurement (which includes the one-time first-use check), and 1 + (time inside
``mon.step``)/(plain time), which a busy machine disturbs less. Threads are pinned
(``--threads``, default 1). Writes ``benchmarks/results/monitor.json``.

Run: ``python benchmarks/bench_monitor.py [--steps 300] [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny_gpt import TinyGPT, gpt_batch, lm_loss

import sgdlab

RESULTS = Path(__file__).resolve().parent / "results"


class LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(32, 128, batch_first=True)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def bn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )  # fmt: skip


def setup(kind: str):
    """(model, loss_fn, optimizer, batches) with fixed seeds (benchmark-side weights)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if kind == "gpt":
        model = TinyGPT(d=128, layers=2, block=64)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batches = [gpt_batch(32, 64, seed=s) for s in range(8)]
        return model, lm_loss, opt, batches
    if kind == "bn_cnn":
        model = bn_cnn()
        batches = [(torch.randn(64, 3, 32, 32, generator=g),
                    torch.randint(0, 10, (64,), generator=g)) for _ in range(8)]  # fmt: skip
    else:
        model = LSTMClassifier()
        batches = [(torch.randn(32, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))
                   for _ in range(8)]  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, nn.CrossEntropyLoss(), opt, batches


INSIDE: list[float] = []  # seconds spent inside mon.step, per monitored run


def train(kind: str, steps: int, monitored: bool, store: Path | None = None) -> list[float]:
    """Per-step wall times of one run (the Monitor's start and close in the first/last)."""
    model, loss_fn, opt, batches = setup(kind)
    times = []
    inside = 0.0
    t0 = time.perf_counter()
    mon = sgdlab.Monitor(model, loss_fn, opt, store=store).start() if monitored else None
    for t in range(steps):
        x, y = batches[t % len(batches)]
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            s0 = time.perf_counter()
            mon.step(x, y, loss)
            inside += time.perf_counter() - s0
        if t == steps - 1 and mon is not None:
            mon.close()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        t0 = t1
    if monitored:
        INSIDE.append(inside)
    return times


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="gpt,bn_cnn,lstm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the BatchNorm route's one warning
    out: dict = {"steps": args.steps, "repeats": args.repeats, "threads": args.threads,
                 "models": {}}  # fmt: skip
    for kind in args.models.split(","):
        train(kind, 20, False)
        train(kind, 20, True)
        plain, watched = [], []
        INSIDE.clear()
        for _ in range(args.repeats):  # alternating
            plain.append(train(kind, args.steps, False))
            watched.append(train(kind, args.steps, True))
        with tempfile.TemporaryDirectory() as tmp:
            stored = sum(train(kind, args.steps, True, Path(tmp) / "m.duckdb"))
        total = lambda runs, a=0: statistics.median(sum(r[a:]) for r in runs)  # noqa: E731
        p, w = total(plain), total(watched)
        ps, ws = total(plain, 100), total(watched, 100)
        inside = statistics.median(INSIDE)  # the Monitor's own time: robust to a busy machine
        row = {
            "plain_s": p, "monitor_s": w, "monitor_with_store_s": stored,
            "overhead": w / p, "overhead_steady": ws / ps, "overhead_with_store": stored / p,
            "step_ms": 1e3 * p / args.steps, "overhead_inside": 1 + inside / p,
        }  # fmt: skip
        out["models"][kind] = row
        print(f"{kind:7s} step {row['step_ms']:.1f} ms  monitor/plain {w / p:.3f}  "
              f"steady {ws / ps:.3f}  inside mon.step {1 + inside / p:.3f}  "
              f"with store {stored / p:.3f}  (target <= 1.05)")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monitor.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
