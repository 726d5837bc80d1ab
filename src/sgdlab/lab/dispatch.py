"""The driver side of a batch of runs: reuse from the store, execute the rest, store results.

:func:`dispatch` is shared by lab sessions and ``sgdlab sweep``. For each named config:

1. its hash (:meth:`~sgdlab.config.RunConfig.hash`) is looked up in the store; a complete
   run with that hash is **reused** (loaded, never rerun) — unless the config has no fixed
   seed, when no stored run reproduces it;
2. the others go to the executor in **one** call, so a parallel executor (processes, Ray)
   sees every pending run of the batch at once;
3. as each run finishes, this process — the only writer — stores it (``kind``, ``name``);
   a run that failed (it raised, or its worker died) is stored as ``failed`` with its
   error, and the others still land.

Progress is one count over all runs of the batch, reused runs included:
``progress(event, label, done, total)`` with event ``"reused"`` (once, ``done`` = reused
runs), ``"run"`` (``label`` = the run that finished) and ``"failed"`` (``label`` =
``name: error``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sgdlab.config import load_config
from sgdlab.engine.result import RunResult
from sgdlab.lab.executor import Executor, RunFailure
from sgdlab.store import Store

#: callback(event, label, done, total)
Progress = Callable[[str, str, int, int], None]


@dataclass
class Dispatched:
    """What :func:`dispatch` returns: the results by name, the failures (name → error), and
    how many runs were reused from the store."""

    results: dict[str, RunResult] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    reused: int = 0

    @property
    def total(self) -> int:
        return len(self.results) + len(self.failures)


def _store_failure(db: Store, name: str, config: dict[str, Any], kind: str, error: str) -> None:
    """A failed run's row: its config and error, status ``failed`` (no data)."""
    cfg = load_config(config)
    run_id = uuid.uuid4().hex[:12]
    db.begin_run(run_id, kind=kind, name=name, config=cfg.canonical(), config_hash=cfg.hash(),
                 chains=cfg.chains, steps=cfg.steps,
                 problem={"name": cfg.problem.name})  # fmt: skip
    db.fail_run(run_id, error)


def dispatch(
    jobs: Sequence[tuple[str, dict[str, Any]]],
    db: Store | None,
    executor: Executor,
    *,
    kind: str,
    progress: Progress | None = None,
) -> Dispatched:
    """Run ``jobs`` (``(name, config)`` pairs with distinct names), reusing and writing ``db``.

    Args:
        jobs: the runs; every config must already be valid (a bad config raises its
            :class:`~sgdlab.errors.ConfigError` here, before anything runs or is stored).
        db: the store (``None``: run everything in memory, store nothing).
        executor: runs the configs not found in ``db``.
        kind: the ``kind`` of the stored runs (``lab``, ``sweep``).
        progress: optional callback (module docstring).
    """
    out = Dispatched()
    todo: list[tuple[str, dict[str, Any]]] = []
    for name, cfg in jobs:
        loaded = load_config(cfg)
        loaded.canonical()  # validates the components: a bad config fails before any run
        # a run without a fixed seed is never a reproduction of this config: never reuse it
        fixed = db is not None and loaded.seed is not None
        rid = db.find_complete(loaded.hash()) if fixed else None
        if rid is not None:
            out.results[name] = db.load_result(rid)
            out.reused += 1
        else:
            todo.append((name, cfg))
    total = len(jobs)
    if progress:
        progress("reused", "", out.reused, total)

    seen: set[int] = set()

    def done(i: int, res: RunResult | RunFailure) -> None:
        seen.add(i)
        name, cfg = todo[i]
        if isinstance(res, RunFailure):
            out.failures[name] = res.error
            if db is not None:
                _store_failure(db, name, cfg, kind, res.error)
            if progress:
                progress("failed", f"{name}: {res.error}", out.total, total)
            return
        if db is not None:
            db.save_result(res, kind=kind, name=name)
        out.results[name] = res
        if progress:
            progress("run", name, out.total, total)

    returned = executor.map([c for _, c in todo], done)
    for i, res in enumerate(returned):  # an executor that did not call `done` for some
        if i not in seen:
            done(i, res)
    # results in the order of the jobs, whatever order the runs finished in
    out.results = {name: out.results[name] for name, _ in jobs if name in out.results}
    return out
