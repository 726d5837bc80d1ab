"""Run every benchmark, one after the other (``make bench``); each writes its JSON to
``benchmarks/results/`` and prints its ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_engine.py", "bench_noise.py", "bench_noise_gpt.py", "bench_noise_overhead.py",
           "bench_monitor.py", "bench_curvature.py", "bench_ray.py", "bench_store.py",
           "bench_threads.py"]


def main() -> int:
    failed = 0
    for name in BENCHES:
        print(f"=== {name}", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / name)]) != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
