"""Torch threads for ``sgdlab run``: the loop's time at 1, 2, … cores threads (issue 16).

sgdlab's engine runs K chains as batched tensor ops on small matrices; torch's intra-op
threads split each op across cores, which pays only when an op is large and the cores are
idle. Each config below is run with every thread count in ``--threads`` (default: 1, 2 and
all cores), ``--repeats`` times, alternating; the median loop time of each is reported with
its ratio to one thread. The default of ``sgdlab run --threads`` (1) is the measured best on
the machines tried (``docs/reliability.md``); rerun this on yours, idle and loaded.

Writes ``benchmarks/results/threads.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import sgdlab
from sgdlab.defaults import QUICKSTART

RESULTS = Path(__file__).resolve().parent / "results"

CONFIGS = {
    "quickstart (logistic, digits, K=64)": {**QUICKSTART, "steps": 500},
    "logistic, digits, K=4096": {**QUICKSTART, "chains": 4096, "steps": 100},
    "quadratic d=100, K=1024, stream b=32": {
        "problem": {"name": "quadratic", "dim": 100}, "batch": {"size": 32, "sampling": "stream"},
        "chains": 1024, "steps": 200,
    },
    "mlp 64-32-10, digits, K=256": {
        "problem": {"name": "mlp", "dataset": "digits", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1}, "batch": {"size": 32}, "chains": 256,
        "steps": 200,
    },
}  # fmt: skip


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, 2, os.cpu_count() or 1}))  # fmt: skip
    parser.add_argument("--only", help="run the configs whose label contains this")
    args = parser.parse_args()
    out: dict = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "configs": {}}
    for label, cfg in CONFIGS.items():
        if args.only and args.only not in label:
            continue
        times: dict[int, list[float]] = {t: [] for t in args.threads}
        for _ in range(args.repeats):
            for t in args.threads:
                times[t].append(sgdlab.run(cfg, threads=t).wall_seconds)
        med = {t: statistics.median(v) for t, v in times.items()}
        out["configs"][label] = {
            str(t): {"loop_s": med[t], "vs_one_thread": med[t] / med[args.threads[0]]}
            for t in args.threads
        }
        print(label, {t: round(s, 2) for t, s in med.items()}, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
