"""Engine benchmark: K chains of logistic regression on digits, measured in one run.

Three ways to train K = 256 independent chains (b = 32, 300 steps, lr 0.1, float32):

* ``engine``  — ``sgdlab.run`` (vectorized over chains; per-chain sampling streams,
  schedule, divergence checks and probes every 50 steps, full objective off);
* ``loop``    — (a) a Python loop of K separate trainings, each an ``nn.Linear`` with
  ``torch.optim.SGD`` and its own generator (what one would write without sgdlab);
* ``floor``   — (b) a minimal hand-written batched loop doing the same arithmetic
  (gather, batched matmul, cross-entropy, one backward, an SGD step) and nothing else.

Reports seconds (median of repeats) and the ratios loop/engine (target ≥ 20) and
engine/floor (target ≤ 1.5). Writes ``benchmarks/results/engine.json``.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--chains 256 --steps 300 --repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import sgdlab
from sgdlab.problems import build_problem
from sgdlab.rng import Streams

RESULTS = Path(__file__).resolve().parent / "results"


def config(chains: int, steps: int) -> dict:
    return {
        "problem": {"name": "logistic_regression", "dataset": "digits", "l2": 0.0},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "batch": {"size": 32, "sampling": "with_replacement"},
        "chains": chains,
        "steps": steps,
        "seed": 0,
        "record": {"every": 50, "objective": False},
        "dtype": "float32",
    }


def time_engine(chains: int, steps: int) -> float:
    start = time.perf_counter()
    sgdlab.run(config(chains, steps))
    return time.perf_counter() - start


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    problem = build_problem(
        "logistic_regression", {"dataset": "digits", "l2": 0.0}, Streams(0), torch.float32
    )
    assert problem.X is not None and problem.y is not None
    return problem.X, problem.y.long()


def time_loop(chains: int, steps: int) -> float:
    X, y = _data()
    n, p = X.shape
    classes = int(y.max()) + 1
    start = time.perf_counter()
    for k in range(chains):
        g = torch.Generator().manual_seed(k)
        model = torch.nn.Linear(p, classes)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(steps):
            idx = torch.randint(0, n, (32,), generator=g)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def time_floor(chains: int, steps: int) -> float:
    X, y = _data()
    n, p = X.shape
    classes = int(y.max()) + 1
    g = torch.Generator().manual_seed(0)
    W = torch.zeros(chains, p + 1, classes)
    ones = torch.ones(chains, 32, 1)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, n, (chains, 32), generator=g)
        xb = torch.cat([X[idx], ones], dim=2)
        W.requires_grad_(True)
        logits = torch.bmm(xb, W)
        loss = F.cross_entropy(logits.reshape(-1, classes), y[idx].reshape(-1), reduction="none")
        (grad,) = torch.autograd.grad(loss.view(chains, 32).mean(1).sum(), W)
        W = (W - 0.1 * grad).detach()
    return time.perf_counter() - start


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    time_engine(8, 20)  # warm-up (dataset load, first-call overheads)
    time_floor(8, 20)
    engine = statistics.median(time_engine(args.chains, args.steps) for _ in range(args.repeats))
    floor = statistics.median(time_floor(args.chains, args.steps) for _ in range(args.repeats))
    loop = time_loop(args.chains, args.steps)
    out = {
        "chains": args.chains,
        "steps": args.steps,
        "batch": 32,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seconds": {"engine": engine, "loop": loop, "floor": floor},
        "loop_over_engine": loop / engine,
        "engine_over_floor": engine / floor,
    }
    print(f"engine {engine:.3f}s  loop {loop:.3f}s  floor {floor:.3f}s")
    print(f"loop/engine = {loop / engine:.1f}x (target >= 20)")
    print(f"engine/floor = {engine / floor:.2f}x (target <= 1.5)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
