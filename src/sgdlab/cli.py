"""The ``sgdlab`` command line (typer + rich).

Every command exits 0 on success, 2 on a bad config or argument (one line naming the
field), 1 on other errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sgdlab.errors import ConfigError, SgdlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure, control and exploit the randomness of SGD.",
)
from sgdlab.lab.cli import lab_app  # noqa: E402

app.add_typer(lab_app, name="lab")
console = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="DuckDB results file (default: ./sgdlab-results/sgdlab.duckdb)"),
]


def _fail(exc: Exception) -> None:
    if isinstance(exc, ConfigError):
        msg = f"[bold red]error:[/] {exc.field}: {exc.message}"
        err.print(msg, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _store_path(store: Path | None) -> Path:
    from sgdlab.store import default_store_path

    return store if store is not None else default_store_path()


def run_with_progress(config: Any, store: Path | None, name: str | None = None) -> Any:
    """Run a config with a rich progress bar; returns the RunResult."""
    from sgdlab.engine.runner import run

    with Progress(
        TextColumn("[bold]running[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("run", total=None)

        def progress(step: int, total: int) -> None:
            bar.update(task, completed=step, total=total)

        return run(config, store=_store_path(store), progress=progress, name=name)


@app.command("run")
def run_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config file (default: the built-in quick start)")
    ] = None,
    store: StoreOpt = None,
    name: Annotated[str | None, typer.Option(help="label stored with the run")] = None,
) -> None:
    """Run K chains of a YAML config and store the results."""
    from sgdlab.defaults import QUICKSTART

    try:
        result = run_with_progress(config if config is not None else QUICKSTART, store, name)
    except SgdlabError as exc:
        _fail(exc)
        return
    n_div = int(result.diverged.sum())
    console.print(
        f"run [bold cyan]{result.run_id}[/] complete: {result.chains} chains, "
        f"{result.wall_seconds:.1f}s, {n_div} diverged"
    )
    console.print(f"store: {result.store_path}")
    console.print(f"next: sgdlab show {result.run_id}")


@app.command("runs")
def runs_cmd(
    store: StoreOpt = None,
    status: Annotated[str | None, typer.Option(help="complete, running or failed")] = None,
    limit: Annotated[int, typer.Option(help="show at most this many")] = 30,
) -> None:
    """List the runs in the store, newest first."""
    from sgdlab.store import Store

    try:
        with Store(_store_path(store), read_only=True) as db:
            rows = db.runs(status=status)
    except SgdlabError as exc:
        _fail(exc)
        return
    table = Table(title=f"runs in {_store_path(store)}")
    table.add_column("run id", no_wrap=True, style="cyan")
    for col in ("kind", "name", "problem", "optimizer", "K", "T", "status", "time"):
        table.add_column(col)
    for r in rows[:limit]:
        cfg = json.loads(r["config_json"] or "{}")
        prob = (cfg.get("problem") or {}).get("name", "")
        opt = cfg.get("optimizer") or {}
        opt_s = f"{opt.get('name', '')} lr={opt.get('lr', '')}" if opt else ""
        secs = r["wall_seconds"]
        table.add_row(
            r["run_id"], r["kind"] or "", r["name"] or "", prob, opt_s, str(r["chains"]),
            str(r["steps"] or ""), r["status"], "" if secs is None else f"{secs:.1f}s",
        )
    console.print(table)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} more; use --limit)")


@app.command("show")
def show_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="folder for the figure")] = None,
) -> None:
    """Summarize a run and draw its objective across chains (median, 10–90% band)."""
    from sgdlab.report.summary import show_run

    try:
        show_run(run_id, _store_path(store), out, console)
    except SgdlabError as exc:
        _fail(exc)


@app.command("problems")
def problems_cmd() -> None:
    """List the built-in problems and their parameters."""
    from sgdlab.problems import PROBLEMS
    from sgdlab.report.summary import params_table

    for name, cls in PROBLEMS.items():
        console.print(params_table(f"{name} — {cls.summary}", cls.Params))


@app.command("optimizers")
def optimizers_cmd() -> None:
    """List the update rules and learning-rate schedules and their parameters."""
    from sgdlab.optim import OPTIMIZERS, SCHEDULES
    from sgdlab.report.summary import params_table

    for name, cls in OPTIMIZERS.items():
        console.print(params_table(f"optimizer {name}", cls.Params))
    for name, cls in SCHEDULES.items():
        console.print(params_table(f"schedule {name}", cls.Params))


@app.command("demo")
def demo_cmd(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="report folder")] = None,
) -> None:
    """The main job: every lab study in quick mode (reusing stored runs), then the report.

    For the single-run quick start instead: ``sgdlab run examples/quickstart.yaml``.
    """
    from sgdlab.lab.cli import run_cmd as lab_run

    lab_run(names=None, all_=True, quick=True, store=store, out=out, workers=1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
