"""The ``sgdlab`` command line (typer + rich).

Every command exits 0 on success, 2 on a bad config or argument (one line naming the
field), 1 on other errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sgdlab._cli_util import err, guarded, make_console, positive, writable_dir
from sgdlab.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure, control and exploit the randomness of SGD.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from sgdlab import __version__

        typer.echo(f"sgdlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Measure, control and exploit the randomness of SGD."""
from sgdlab.lab.cli import lab_app  # noqa: E402

app.add_typer(lab_app, name="lab")
console = make_console()

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="DuckDB results file (default: ./sgdlab-results/sgdlab.duckdb)"),
]


RUN_STATUSES = ("complete", "running", "failed")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _store_path(store: Path | None) -> Path:
    from sgdlab.store import default_store_path

    return store if store is not None else default_store_path()


def run_with_progress(config: Any, store: Path | None, name: str | None = None) -> Any:
    """Run a config with a rich progress bar; returns the RunResult."""
    from sgdlab.config import load_config
    from sgdlab.engine.runner import run

    config = load_config(config)
    config.canonical()  # validates the components too: a bad config fails before the bar
    with Progress(
        TextColumn("[bold]running[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no bar (and no stray blank line) in logs and pipes
    ) as bar:
        task = bar.add_task("run", total=None)

        def progress(step: int, total: int) -> None:
            bar.update(task, completed=step, total=total)

        return run(config, store=_store_path(store), progress=progress, name=name)


@app.command("run")
@guarded
def run_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config file (default: the built-in quick start)")
    ] = None,
    store: StoreOpt = None,
    name: Annotated[str | None, typer.Option(help="label stored with the run")] = None,
) -> None:
    """Run K chains of a YAML config and store the results."""
    from sgdlab.defaults import QUICKSTART

    result = run_with_progress(config if config is not None else QUICKSTART, store, name)
    n_div = int(result.diverged.sum())
    console.print(
        f"run [bold cyan]{result.run_id}[/] complete: {_plural(result.chains, 'chain')}, "
        f"{result.wall_seconds:.1f}s, {n_div} diverged"
    )
    console.print(f"store: {result.store_path}")
    console.print(f"next: sgdlab show {result.run_id}")


@app.command("runs")
@guarded
def runs_cmd(
    store: StoreOpt = None,
    status: Annotated[str | None, typer.Option(help="complete, running or failed")] = None,
    limit: Annotated[int, typer.Option(help="show at most this many")] = 30,
) -> None:
    """List the runs in the store, newest first."""
    from sgdlab.store import Store

    if status is not None and status not in RUN_STATUSES:
        raise ConfigError("--status", f"must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    if limit < 1:
        raise ConfigError("--limit", f"must be at least 1, got {limit}")
    with Store(_store_path(store), read_only=True) as db:
        rows = db.runs(status=status)
    from sgdlab.report.summary import PlainTable

    table = PlainTable(title=f"runs in {_store_path(store)}")
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
        )  # fmt: skip
    console.print(table)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} more; use --limit)")


@app.command("show")
@guarded
def show_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="folder for the figure")] = None,
) -> None:
    """Summarize a run and draw its objective across chains (median, 10–90% band)."""
    from sgdlab.report.summary import show_run

    writable_dir(out, "--out")
    show_run(run_id, _store_path(store), out, console)


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
@guarded
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

    positive(epsilon, "--epsilon")
    positive(rho, "--rho")
    if not 0 < tol < 1:
        raise ConfigError("--tol", f"must be in (0, 1), got {tol}")
    rows = sharpness_of_run(_store_path(store), run_id, _parse_chains(chains),
                            epsilon=epsilon, rho=rho, tol=tol)  # fmt: skip
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
@guarded
def landscape_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    chains: ChainsOpt = None,
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="folder for the figures")] = None,
    span: Annotated[float, typer.Option(help="slice half-width, relative to ‖w‖")] = 1.0,
) -> None:
    """Loss-landscape slices of F through a run's final parameters (and between two chains)."""
    from sgdlab.report.run_measures import landscape_of_run

    positive(span, "--span")
    writable_dir(out, "--out")
    paths = landscape_of_run(_store_path(store), run_id, _parse_chains(chains), out, span=span)
    for path in paths:
        if path.suffix == ".png":
            console.print(f"figure: {path.resolve()}", soft_wrap=True, highlight=False)


@app.command("advise")
@guarded
def advise_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    store: StoreOpt = None,
) -> None:
    """What to change (batch size, learning rate, clipping), from a run's measured noise."""
    from sgdlab.report.summary import advice_for_run

    items, has_noise = advice_for_run(run_id, _store_path(store))
    if not has_noise:
        console.print("note: the run recorded no noise statistics, so there is no batch-size "
                      "advice; record them with `record: {noise: true}` in the config, or "
                      "with Monitor(noise_every=...)", highlight=False)  # fmt: skip
    if not items:
        console.print("no advice: no rule fired (no spikes, stable loss"
                      + (", batch near the noise scale)" if has_noise else ")"))  # fmt: skip
    for item in items:
        console.print(f"[bold]{item.kind}[/]: {item.message}", highlight=False)


@app.command("demo")
@guarded
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
    """Console entry point: SIGTERM stops a run like Ctrl-C (the run is marked failed)."""
    import signal

    from sgdlab._cli_util import Terminated

    def on_sigterm(signum: int, frame: object) -> None:
        raise Terminated("SIGTERM")

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, on_sigterm)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
