"""``sgdlab sweep``: one base config, a grid of overrides, one run per point (local,
processes or Ray), with one progress bar over all runs and a summary table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from sgdlab.cli._util import PlainTable, error_line, guarded
from sgdlab.cli.app import StoreOpt, app, console, store_path
from sgdlab.cli.lab import AddressOpt, ExecutorOpt, WorkersOpt, executor_from_options

_GRID_HELP = ("KEY=V1,V2,… a config key and its values (repeat for a Cartesian product), "
              "e.g. --grid optimizer.lr=0.01,0.1 --grid batch.size=8,64")  # fmt: skip


@app.command("sweep")
@guarded
def sweep_cmd(
    config: Annotated[Path, typer.Argument(help="base YAML config")],
    grid: Annotated[list[str], typer.Option("--grid", help=_GRID_HELP)],
    store: StoreOpt = None,
    name: Annotated[str | None, typer.Option(help="sweep label (default: the file's name)")] = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run a config over a grid of values: one run per point, reused from the store by
    config hash, stored as <name>/<key=value,…> (kind sweep)."""
    import numpy as np

    from sgdlab.cli._progress import RunsProgress
    from sgdlab.lab.dispatch import dispatch
    from sgdlab.lab.page_runs import primary_metric
    from sgdlab.lab.sweep import grid_points, parse_grid, read_base
    from sgdlab.report.figures import band
    from sgdlab.store import open_store

    axes = parse_grid(grid)
    base = read_base(config)
    points = grid_points(base, axes)  # every point validated: nothing runs on a bad grid
    runner = executor_from_options(executor, workers, address)
    label = name or base.get("name") or config.stem
    jobs = [(f"{label}/{p.name}", p.config) for p in points]
    t0 = time.perf_counter()
    db = open_store(store_path(store))
    try:
        with RunsProgress() as bar:
            batch = dispatch(jobs, db, runner, kind="sweep", progress=bar)
    finally:
        db.close()
    table = PlainTable(title=f"sweep {label}: {len(jobs)} runs", title_justify="left")
    for col in (*(k for k, _ in axes), "run id", "final metric", "median [10%, 90%]",
                "diverged", "time"):  # fmt: skip
        table.add_column(col)
    for point, (job, _) in zip(points, jobs, strict=True):
        values = [str(v) for v in point.values]
        res = batch.results.get(job)
        if res is None:
            table.add_row(*values, "—", "failed", batch.failures.get(job, ""), "", "")
            continue
        metric = primary_metric(res.metrics)
        if metric is None:
            summary, cell = "—", ""
        else:
            med, lo, hi = band(res.metric(metric)[1][:, -1:])
            summary, cell = metric, f"{med[0]:.4g} [{lo[0]:.4g}, {hi[0]:.4g}]"
        table.add_row(*values, res.run_id, summary, cell,
                      f"{int(np.sum(res.diverged))}/{res.chains}", f"{res.wall_seconds:.1f}s")
    console.print(table)
    console.print(f"{len(jobs)} runs ({batch.reused} reused from {store_path(store)}) in "
                  f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    ids = [r.run_id for r in batch.results.values()]
    if ids:
        console.print(f"next: sgdlab report {' '.join(ids)}")
    for job, error in batch.failures.items():
        error_line(f"run {job} failed: {error}")
    if batch.failures:
        raise typer.Exit(1)
