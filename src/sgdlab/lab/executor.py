"""Executors: run a list of configs and return their results, in order.

The lab never calls the engine directly; it hands a grid to an :class:`Executor`:

* :class:`LocalExecutor` — in this process, one run after the other (the default);
* :class:`ProcessExecutor` — a pool of worker processes (``spawn``), one run per task.

A run is a pure function of its config (every random number comes from the config's
seeded streams), and both executors run each config with the same single torch thread, so
they give bit-identical results; a distributed executor only has to keep those two
properties. Executors never touch the store: the lab writes results from the main process.

Torch threads: small problems are dominated by per-step overhead, and intra-op threads
that spin on a busy machine slow a run by 10–50×; runs therefore use ``threads`` (default
1) torch threads, restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

import torch

from sgdlab.api import run
from sgdlab.engine.result import RunResult

Done = Callable[[int, RunResult], None]


def run_config(config: dict[str, Any], threads: int = 1) -> RunResult:
    """Run one config in memory with ``threads`` torch threads (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run(config, store=None)
    finally:
        torch.set_num_threads(old)


class Executor(Protocol):
    """Runs configs; ``map`` returns one :class:`RunResult` per config, in input order.

    ``done(i, result)`` is called as each run finishes (in any order), e.g. to store it and
    advance a progress bar.
    """

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[RunResult]:
        ...


class LocalExecutor:
    """Runs configs one after the other in this process."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[RunResult]:
        out = []
        for i, cfg in enumerate(configs):
            res = run_config(cfg, self.threads)
            if done is not None:
                done(i, res)
            out.append(res)
        return out


class ProcessExecutor:
    """Runs configs in ``workers`` spawned processes (``threads`` torch threads each)."""

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        self.workers = workers
        self.threads = threads

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[RunResult]:
        import multiprocessing as mp

        if not configs:
            return []
        out: list[RunResult | None] = [None] * len(configs)
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_config, c, self.threads): i for i, c in enumerate(configs)}
            for fut in as_completed(futures):
                i = futures[fut]
                res = fut.result()
                out[i] = res
                if done is not None:
                    done(i, res)
        return [r for r in out if r is not None]


def make_executor(workers: int = 1) -> LocalExecutor | ProcessExecutor:
    """``LocalExecutor`` for ``workers <= 1``, else a ``ProcessExecutor``."""
    return LocalExecutor() if workers <= 1 else ProcessExecutor(workers)
