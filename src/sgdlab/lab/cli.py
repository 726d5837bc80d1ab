"""``sgdlab lab ...`` commands (mounted on the main CLI)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

lab_app = typer.Typer(no_args_is_help=True, help="Reproducible studies of the article's claims.")
console = Console()
err = Console(stderr=True)
_STORE_HELP = "DuckDB results file (default: ./sgdlab-results/sgdlab.duckdb)"
_OUT_HELP = "report folder (default: ./sgdlab-results/report)"


@lab_app.command("list")
def list_cmd() -> None:
    """List the studies and the claim each one tests."""
    from sgdlab.lab.study import all_studies

    table = Table(title="sgdlab lab studies", title_justify="left")
    table.add_column("study", style="cyan", no_wrap=True)
    table.add_column("article")
    table.add_column("claim")
    for name, cls in all_studies().items():
        table.add_row(name, cls.section, cls.claim)
    console.print(table)


@lab_app.command("run")
def run_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="study names")] = None,
    all_: Annotated[bool, typer.Option("--all", help="run every study")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="small settings, minutes")] = False,
    store: Annotated[Path | None, typer.Option("--store", help=_STORE_HELP)] = None,
    out: Annotated[Path | None, typer.Option("--out", help=_OUT_HELP)] = None,
    workers: Annotated[int, typer.Option("--workers", help="worker processes (1: in-process)")] = 1,
) -> None:
    """Run studies (reusing stored runs), then write findings.json, figures and report.md."""
    from sgdlab.errors import SgdlabError
    from sgdlab.lab.executor import make_executor
    from sgdlab.lab.session import run_studies
    from sgdlab.lab.study import all_studies
    from sgdlab.store import default_store_path

    registry = all_studies()
    selected = list(registry) if all_ else list(names or [])
    if not selected:
        err.print("[bold red]error:[/] give study names or --all (see `sgdlab lab list`)")
        raise typer.Exit(2)
    bad = [n for n in selected if n not in registry]
    if bad:
        err.print(f"[bold red]error:[/] unknown study {bad[0]!r}; studies: {', '.join(registry)}")
        raise typer.Exit(2)
    store_path = store if store is not None else default_store_path()
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description:<14}[/]"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(event: str, study: str, done: int, total: int) -> None:
            if study not in tasks:
                tasks[study] = bar.add_task(study, total=max(total, 1), status="")
            task = tasks[study]
            if event == "run":
                bar.update(task, completed=done, total=max(total, 1), status=f"{done}/{total} runs")
            elif event == "analyze":
                bar.update(task, status="analysing")

        try:
            outcome = run_studies(
                selected, quick=quick, store=store_path, out=out,
                executor=make_executor(workers), progress=progress,
            )
        except SgdlabError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None
        for study, task in tasks.items():
            bar.update(task, status=f"done {outcome.per_study_seconds.get(study, 0):.1f}s")
    table = Table(title="findings", title_justify="left")
    for col in ("study", "quantity", "measured [95% CI]", "predicted", "verdict"):
        table.add_column(col)
    from sgdlab.report.lab_report import fmt

    colors = {"agrees": "green", "disagrees": "red", "inconclusive": "yellow"}
    for f in outcome.findings:
        table.add_row(
            f.study, f.quantity, f"{fmt(f.measured)} [{fmt(f.ci_low)}, {fmt(f.ci_high)}]",
            fmt(f.predicted), f"[{colors[f.verdict]}]{f.verdict}[/]",
        )
    console.print(table)
    console.print(
        f"{outcome.runs_total} runs ({outcome.runs_reused} reused from {store_path}) in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    console.print(f"report:   {outcome.report.resolve()}")
    console.print(f"findings: {outcome.findings_json.resolve()}")
    console.print(f"figures:  {outcome.out.resolve()} ({len(outcome.figures)} PNG)")
