"""Executors: run a list of configs and return their outcomes, in order.

The lab and ``sgdlab sweep`` never call the engine directly; they hand a list of configs to
an :class:`Executor`:

* :class:`LocalExecutor` — in this process, one run after the other (the default);
* :class:`ProcessExecutor` — a pool of worker processes (``spawn``), one run per task;
* :class:`RayExecutor` — one Ray task per run, on a local Ray instance or a cluster
  (``address``); each task declares the CPUs it uses (``num_cpus`` = its torch threads).

A run is a pure function of its config (every random number comes from the config's
seeded streams), and every executor runs each config with the same single torch thread
(:func:`run_config`), so they give bit-identical results (tested for all three). Executors
never touch the store: they return results to the driver, which alone writes them
(:mod:`sgdlab.lab.dispatch`).

A run that raises, or whose worker dies, is one :class:`RunFailure` in the output (with its
error, one line); the other runs still finish. Ray retries a task whose worker died
(``max_retries``, 2 by default) before reporting it; a run that raises is not retried (it
would raise again: runs are deterministic).

Torch threads: small problems are dominated by per-step overhead, and intra-op threads
that spin on a busy machine slow a run by 10–50×; runs therefore use ``threads`` (default
1) torch threads, restored afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from sgdlab.api import run
from sgdlab.engine.result import RunResult
from sgdlab.errors import ConfigError

#: the executors ``sgdlab lab run`` and ``sgdlab sweep`` offer (``--executor``)
EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class RunFailure:
    """A run that did not produce a result: the error, one line (``Type: message``)."""

    error: str


Outcome = RunResult | RunFailure
Done = Callable[[int, Outcome], None]


def failure(exc: BaseException) -> RunFailure:
    """The :class:`RunFailure` of an exception: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return RunFailure(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


def run_config(config: dict[str, Any], threads: int = 1) -> RunResult:
    """Run one config in memory with ``threads`` torch threads (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run(config, store=None)
    finally:
        torch.set_num_threads(old)


def attempt(
    config: dict[str, Any],
    threads: int = 1,
    task: Callable[[dict[str, Any], int], RunResult] = run_config,
) -> Outcome:
    """``task(config, threads)``, or its :class:`RunFailure` — made where the run raised, so
    the error crosses a process boundary as text (not every exception can be pickled)."""
    try:
        return task(config, threads)
    except Exception as exc:  # reported per run; KeyboardInterrupt stops everything
        return failure(exc)


def largest_first(configs: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of ``configs`` by decreasing size (chains × steps): a parallel executor that
    starts the longest runs first does not end with one worker busy and the others idle."""
    def size(c: dict[str, Any]) -> float:
        return float(c.get("chains") or 1) * float(c.get("steps") or 1)

    return sorted(range(len(configs)), key=lambda i: -size(configs[i]))


class Executor(Protocol):
    """Runs configs; ``map`` returns one outcome (:class:`RunResult` or :class:`RunFailure`)
    per config, in input order.

    ``done(i, outcome)`` is called in the calling process as each run finishes (in any
    order), e.g. to store it and advance a progress display.
    """

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[Outcome]:
        ...


class LocalExecutor:
    """Runs configs one after the other in this process."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[Outcome]:
        out: list[Outcome] = []
        for i, cfg in enumerate(configs):
            res = attempt(cfg, self.threads)
            if done is not None:
                done(i, res)
            out.append(res)
        return out


class ProcessExecutor:
    """Runs configs in ``workers`` spawned processes (``threads`` torch threads each)."""

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        self.workers = workers
        self.threads = threads

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[Outcome]:
        import multiprocessing as mp

        out: list[Outcome | None] = [None] * len(configs)
        if not configs:
            return []
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            futures = {pool.submit(attempt, configs[i], self.threads): i
                       for i in largest_first(configs)}  # fmt: skip
            for fut in as_completed(futures):
                i = futures[fut]
                res: Outcome
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    res = RunFailure("BrokenProcessPool: a worker process died (killed?)")
                except Exception as exc:
                    res = failure(exc)
                out[i] = res
                if done is not None:
                    done(i, res)
        return [r for r in out if r is not None]


class RayExecutor:
    """Runs each config as a Ray task; results come back to the driver, in input order.

    Args:
        address: a Ray cluster (``ray start --head`` prints it, e.g. ``10.0.0.1:6379``,
            or ``auto``); ``None`` uses the Ray instance this process already joined, else
            starts a local one with ``num_cpus`` CPUs (default: all) and stops it after
            :meth:`map`.
        num_cpus: CPUs of a local instance started here (ignored with ``address``).
        threads: torch threads per run, also the CPUs each task declares.
        max_retries: times Ray reruns a task whose worker died before reporting it failed.
        task: the function each task runs on ``(config, threads)`` (default
            :func:`run_config`; it must be importable or picklable by the workers).

    Every node needs the same sgdlab and torch as the driver (a cluster's nodes run the
    same install, or a Ray ``runtime_env``). Results are bit-identical to
    :class:`LocalExecutor`: each task calls the same :func:`run_config`.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        threads: int = 1,
        max_retries: int = 2,
        task: Callable[[dict[str, Any], int], RunResult] = run_config,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.threads = threads
        self.max_retries = max_retries
        self.task = task

    def _connect(self) -> bool:
        """Join or start Ray; ``True`` if this call started it (then :meth:`map` stops it)."""
        ray = import_ray()
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
        try:
            ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                "--address", f"cannot connect to Ray at {self.address!r}: {exc}; start one with "
                "`ray start --head` and give the address it prints"
            ) from None  # fmt: skip
        return True

    def map(self, configs: Sequence[dict[str, Any]], done: Done | None = None) -> list[Outcome]:
        if not configs:
            return []
        ray = import_ray()
        started = self._connect()
        try:
            remote = ray.remote(attempt).options(
                num_cpus=self.threads, max_retries=self.max_retries, retry_exceptions=False
            )
            task = ray.put(self.task) if self.task is not run_config else run_config
            index = {remote.remote(configs[i], self.threads, task): i
                     for i in largest_first(configs)}  # fmt: skip
            out: list[Outcome | None] = [None] * len(configs)
            pending = list(index)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    i = index[ref]
                    res: Outcome
                    try:
                        res = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker died after the retries
                        res = failure(exc)
                    out[i] = res
                    if done is not None:
                        done(i, res)
            return [r for r in out if r is not None]
        finally:
            if started:
                ray.shutdown()


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor", "ray is not installed; install it with `pip install 'sgdlab[ray]'`"
        ) from None
    return ray


def make_executor(
    kind: Literal["local", "process", "ray"] | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> LocalExecutor | ProcessExecutor | RayExecutor:
    """The executor of ``--executor`` / ``--workers`` / ``--address``.

    ``kind=None`` keeps the old meaning of ``--workers``: local for 1 (or none given),
    processes above. ``workers`` is the number of processes of ``process`` (default: the
    CPU count) and the CPUs of a local Ray instance (default: all); ``address`` is a Ray
    cluster to join.
    """
    if workers is not None and workers < 1:
        raise ConfigError("--workers", f"must be at least 1, got {workers}")
    if kind is None:
        kind = "local" if workers is None or workers <= 1 else "process"
    if kind not in EXECUTORS:
        raise ConfigError("--executor", f"must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if address is not None and kind != "ray":
        raise ConfigError("--address", "is a Ray cluster address: give it with --executor ray")
    if kind == "ray":
        import_ray()  # a missing Ray is a one-line error before anything runs
        return RayExecutor(address=address, num_cpus=workers)
    if kind == "local":
        return LocalExecutor()
    return ProcessExecutor(workers or os.cpu_count() or 1)
