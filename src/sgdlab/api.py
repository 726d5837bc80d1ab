"""``sgdlab.run``: a config in, a :class:`~sgdlab.engine.result.RunResult` out (and stored)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import torch

from sgdlab.config import RunConfig
from sgdlab.engine import RunResult, execute, prepare
from sgdlab.engine.loop import Progress
from sgdlab.errors import ConfigError, SgdlabError
from sgdlab.interrupts import deferred
from sgdlab.store import Store, open_store
from sgdlab.validation import clip

__all__ = ["run", "torch_threads"]

#: seconds a run that failed waits for the store's lock to record its failure; after that
#: the run stays ``running`` and shows as stale once its process is gone
FAIL_TIMEOUT = 5.0


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``None``: as they are), then
    restore the previous number. The setting is process-wide: runs in parallel threads of
    one process share it."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError("threads", f"must be an integer ≥ 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reason(exc: BaseException) -> str:
    """What a stopped run stores as its error: the exception's type and first line."""
    if isinstance(exc, KeyboardInterrupt):
        return f"{type(exc).__name__}: {str(exc) or 'Ctrl-C'}"
    return f"{type(exc).__name__}: {clip(str(exc), 1000)}"


def _record_failure(db: Store, run_id: str, exc: BaseException) -> None:
    """Mark the run failed, shielded from a second Ctrl-C (dropped: ``exc`` is already on its
    way out); never masks ``exc``."""
    with deferred(reraise=False):
        try:
            Store(db.path, timeout=FAIL_TIMEOUT).fail_run(run_id, _reason(exc))
        except (SgdlabError, OSError):
            pass  # the run stays ``running``: stale once this process is gone


def run(
    config: RunConfig | dict | str | Path,
    store: Store | str | Path | None = None,
    progress: Progress | None = None,
    name: str | None = None,
    threads: int | None = None,
) -> RunResult:
    """Run K chains of a config and return the :class:`RunResult`.

    Args:
        config: a dict, a YAML path or a validated :class:`RunConfig`.
        store: ``None`` (keep results in memory only), a path to a DuckDB file, or a
            :class:`sgdlab.store.Store`. A stored run is listed as complete only after its
            metrics and parameters are all written (one transaction). The store is locked
            only while the run's row is inserted and while its data are committed, so it can
            be read — and written by another run — while this one runs.
        progress: optional ``callback(step, total)``.
        name: optional label stored with the run.
        threads: torch intra-op threads during the run (``None``: leave torch's setting;
            ``sgdlab run`` uses 1, see ``docs/reliability.md``).

    An interrupt (Ctrl-C, SIGTERM) or an error marks the stored run ``failed`` with the
    reason — unless its commit had completed, in which case it stays ``complete`` — and is
    raised again. A config that cannot run (bad values, not enough memory) raises
    :class:`~sgdlab.errors.ConfigError` before anything is written.

    Example:
        >>> res = run({"problem": {"name": "quadratic", "dim": 2},
        ...            "optimizer": {"name": "sgd", "lr": 0.1}, "chains": 4, "steps": 50,
        ...            "batch": {"size": 8, "sampling": "stream"}})
        >>> steps, values = res.metric("suboptimality")
        >>> values.shape
        (4, 6)
    """
    with torch_threads(threads):
        plan = prepare(config)
        cfg = plan.config
        canonical = cfg.canonical()
        run_id = uuid.uuid4().hex[:12]
        db = open_store(store) if store is not None else None
        try:
            if db is not None:
                db.begin_run(
                    run_id,
                    kind="engine",
                    name=name or cfg.name,
                    config=canonical,
                    config_hash=cfg.hash(),
                    streams=plan.streams.describe(),
                    chains=cfg.chains,
                    steps=cfg.steps,
                    problem=plan.problem.describe(),
                )
            loop = execute(plan, progress)
            result = RunResult(
                run_id=run_id,
                config=canonical,
                config_hash=cfg.hash(),
                metrics=loop.recorder.result(),
                final_params=loop.W.detach().cpu(),
                diverged_at=loop.diverged_at.cpu().numpy(),
                seed_entropy=str(plan.streams.entropy),
                wall_seconds=loop.seconds,
                average_params=None if loop.avg is None else loop.avg.detach().cpu(),
                store_path=None if db is None else db.path,
            )
            if db is not None:
                db.complete_run(result)
        except BaseException as exc:
            if db is not None:
                _record_failure(db, run_id, exc)
            raise
        finally:
            if db is not None and not isinstance(store, Store):
                with suppress(Exception):
                    db.close()
        return result
