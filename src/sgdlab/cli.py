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


ChainsOpt = Annotated[
    str | None,
    typer.Option("--chains", help="comma-separated chain indices (default: the first few)"),
]


def _parse_chains(chains: str | None) -> list[int] | None:
    if not chains:
        return None
    try:
        return [int(c) for c in chains.split(",") if c.strip()]
    except ValueError:
        raise ConfigError("--chains", f"expected integers like 0,3,5, got {chains!r}") from None


@app.command("sharpness")
def sharpness_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    chains: ChainsOpt = None,
    store: StoreOpt = None,
    epsilon: Annotated[float, typer.Option(help="Keskar box size ε")] = 1e-3,
    rho: Annotated[float, typer.Option(help="SAM radius ρ")] = 0.05,
    tol: Annotated[float, typer.Option(help="relative error bound of λ_max")] = 1e-4,
) -> None:
    """Sharpness of F at a run's final parameters: λ_max, tr H, ε-, ρ- and adaptive sharpness."""
    from sgdlab.report.run_measures import sharpness_of_run

    try:
        rows = sharpness_of_run(_store_path(store), run_id, _parse_chains(chains),
                                epsilon=epsilon, rho=rho, tol=tol)
    except SgdlabError as exc:
        _fail(exc)
        return
    table = Table(title=f"sharpness of F at the final parameters of run {run_id}")
    cols = ("chain", "F", "λ_max", "tr H ± SE", "ε-sharpness %", "ρ-sharpness", "ASAM")
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["chain"]), f"{r['loss']:.5g}", f"{r['lambda_max']:.5g}",
            f"{r['trace']:.4g} ± {r['trace_stderr']:.2g}", f"{r['epsilon_sharpness']:.4g}",
            f"{r['rho_sharpness']:.4g}", f"{r['asam_sharpness']:.4g}",
        )
    console.print(table)
    console.print(f"stored as measurements sharpness/* in {_store_path(store)}")


@app.command("landscape")
def landscape_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    chains: ChainsOpt = None,
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="folder for the figures")] = None,
    span: Annotated[float, typer.Option(help="slice half-width, relative to ‖w‖")] = 1.0,
) -> None:
    """Loss-landscape slices of F through a run's final parameters (and between two chains)."""
    from sgdlab.report.run_measures import landscape_of_run

    try:
        paths = landscape_of_run(_store_path(store), run_id, _parse_chains(chains), out,
                                 span=span)
    except SgdlabError as exc:
        _fail(exc)
        return
    for path in paths:
        if path.suffix == ".png":
            console.print(f"figure: {path.resolve()}")


@app.command("advise")
def advise_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    store: StoreOpt = None,
) -> None:
    """What to change (batch size, learning rate, clipping), from a run's measured noise."""
    from sgdlab.report.summary import advice_for_run

    try:
        items = advice_for_run(run_id, _store_path(store))
    except SgdlabError as exc:
        _fail(exc)
        return
    if not items:
        console.print("no advice: no rule fired (batch near the noise scale, no spikes, stable "
                      "loss — or the run recorded no noise statistics: record.noise / Monitor)")
    for item in items:
        console.print(f"[bold]{item.kind}[/]: {item.message}", highlight=False)


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
