"""``sgdlab.run``: a config in, a :class:`~sgdlab.engine.result.RunResult` out (and stored)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sgdlab.config import RunConfig
from sgdlab.engine import RunResult, execute, prepare
from sgdlab.engine.loop import Progress
from sgdlab.store import Store, open_store

__all__ = ["run"]


def run(
    config: RunConfig | dict | str | Path,
    store: Store | str | Path | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> RunResult:
    """Run K chains of a config and return the :class:`RunResult`.

    Args:
        config: a dict, a YAML path or a validated :class:`RunConfig`.
        store: ``None`` (keep results in memory only), a path to a DuckDB file, or an open
            :class:`sgdlab.store.Store`. A stored run is listed as complete only after its
            metrics and parameters are all written (one transaction).
        progress: optional ``callback(step, total)``.
        name: optional label stored with the run.

    Example:
        >>> res = run({"problem": {"name": "quadratic", "dim": 2},
        ...            "optimizer": {"name": "sgd", "lr": 0.1}, "chains": 4, "steps": 50,
        ...            "batch": {"size": 8, "sampling": "stream"}})
        >>> steps, values = res.metric("suboptimality")
        >>> values.shape
        (4, 6)
    """
    plan = prepare(config)
    cfg = plan.config
    canonical = cfg.canonical()
    run_id = uuid.uuid4().hex[:12]
    db = open_store(store) if store is not None else None
    owns = db is not None and not isinstance(store, Store)
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
        try:
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
                db.fail_run(run_id, f"{type(exc).__name__}: {exc}")
            raise
        return result
    finally:
        if owns and db is not None:
            db.close()
