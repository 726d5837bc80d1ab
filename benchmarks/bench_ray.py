"""Ray executor overhead on the quick lab, and the speed-up with 2 workers on 2 cores.

Every run of the quick lab's grids (all studies, 72 runs; nothing reused, nothing stored) is
executed by

* ``LocalExecutor`` — in this process, one run after the other (the reference);
* ``RayExecutor`` on a local Ray instance with 1 CPU — the same serial work through Ray
  tasks: (time − local) / local is Ray's overhead (task dispatch, worker start-up,
  serialising the results back to the driver);
* ``RayExecutor`` with 2 CPUs — two runs at once: local / time is the speed-up.

Ray's start-up (``ray.init``) is timed apart: it is paid once per session. Results are
checked bit-identical to the local ones (final parameters) before any time is reported.
Run it on a quiet machine (``--repeats 3`` for medians). Writes
``benchmarks/results/ray.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from sgdlab.lab.executor import LocalExecutor, RayExecutor, RunFailure
from sgdlab.lab.studies import all_studies

RESULTS = Path(__file__).resolve().parent / "results"


def quick_lab_configs(names: list[str]) -> list[dict]:
    registry = all_studies()
    return [cfg for n in names for cfg in registry[n]().grid(True).values()]


def timed_map(executor, configs) -> tuple[float, list]:
    start = time.perf_counter()
    out = executor.map(configs)
    seconds = time.perf_counter() - start
    bad = [r.error for r in out if isinstance(r, RunFailure)]
    if bad:
        raise SystemExit(f"a run failed: {bad[0]}")
    return seconds, out


def on_ray(num_cpus: int, configs, repeats: int) -> tuple[float, list[float], list]:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    init = time.perf_counter() - start
    try:
        times, out = [], []
        for _ in range(repeats):
            t, out = timed_map(RayExecutor(), configs)
            times.append(t)
    finally:
        ray.shutdown()
    return init, times, out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="*", default=None, help="default: every study")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    names = args.studies or list(all_studies())
    configs = quick_lab_configs(names)
    local_times, ref = [], []
    for _ in range(args.repeats):
        t, ref = timed_map(LocalExecutor(), configs)
        local_times.append(t)
    local = statistics.median(local_times)
    result: dict = {"studies": names, "runs": len(configs), "cpus": os.cpu_count(),
                    "repeats": args.repeats, "local_s": local}  # fmt: skip
    for cpus in (1, 2):
        init, times, out = on_ray(cpus, configs, args.repeats)
        for a, b in zip(ref, out, strict=True):  # the timings mean nothing if results differ
            assert np.array_equal(a.final_params.numpy(), b.final_params.numpy())
        t = statistics.median(times)
        result[f"ray{cpus}_init_s"] = init
        result[f"ray{cpus}_s"] = t
    result["ray1_overhead"] = result["ray1_s"] / local - 1
    result["ray1_overhead_per_run_ms"] = 1e3 * (result["ray1_s"] - local) / len(configs)
    result["ray2_speedup"] = local / result["ray2_s"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray.json").write_text(json.dumps(result, indent=2))
    print(f"{len(configs)} runs of the quick lab ({', '.join(names)}), {os.cpu_count()} cores")
    print(f"local            {local:7.1f} s")
    print(f"ray, 1 CPU       {result['ray1_s']:7.1f} s  overhead {result['ray1_overhead']:+.1%} "
          f"({result['ray1_overhead_per_run_ms']:.0f} ms per run; ray.init "
          f"{result['ray1_init_s']:.1f} s apart)")  # fmt: skip
    print(f"ray, 2 CPUs      {result['ray2_s']:7.1f} s  speed-up ×{result['ray2_speedup']:.2f}")
    return result


if __name__ == "__main__":
    main()
