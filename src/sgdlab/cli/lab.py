"""``sgdlab lab list / run`` and ``sgdlab demo``: the lab's studies from the command line.

``lab run`` shows one progress bar over all runs of the session (reused runs counted) and
ends by printing the path of the interactive page (``report/index.html``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sgdlab.cli._util import error_line, guarded, writable_dir
from sgdlab.cli.app import StoreOpt, app, console, store_path
from sgdlab.errors import ConfigError

lab_app = typer.Typer(no_args_is_help=True, help="Reproducible studies of the article's claims.")
app.add_typer(lab_app, name="lab")
_STORE_HELP = "DuckDB results file (default: ./sgdlab-results/sgdlab.duckdb)"
_OUT_HELP = "report folder (default: report/ beside the store, ./sgdlab-results/report)"


@lab_app.command("list")
def list_cmd() -> None:
    """List the studies and the claim each one tests."""
    from sgdlab.lab.studies import all_studies

    table = Table(title="sgdlab lab studies", title_justify="left")
    table.add_column("study", style="cyan", no_wrap=True)
    table.add_column("article")
    table.add_column("claim")
    for name, cls in all_studies().items():
        table.add_row(escape(name), escape(cls.section), escape(cls.claim))
    console.print(table)


ExecutorOpt = Annotated[
    str | None,
    typer.Option("--executor", help="local (in process), process (--workers processes) or ray "
                 "(one Ray task per run; default: local, or process with --workers > 1)"),
]  # fmt: skip
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", help="worker processes (process), or CPUs of a local Ray instance"),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to join (as `ray start --head` prints it, "
                 "or 'auto'); with --executor ray"),
]  # fmt: skip


def executor_from_options(executor: str | None, workers: int | None, address: str | None):
    """The executor of ``--executor`` / ``--workers`` / ``--address`` (one-line errors)."""
    from sgdlab.lab.executor import make_executor

    return make_executor(executor, workers, address)  # type: ignore[arg-type]


@lab_app.command("run")
@guarded
def run_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="study names")] = None,
    all_: Annotated[bool, typer.Option("--all", help="run every study")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="small settings (2–3 minutes for all studies)")
    ] = False,
    store: Annotated[Path | None, typer.Option("--store", help=_STORE_HELP)] = None,
    out: Annotated[Path | None, typer.Option("--out", help=_OUT_HELP)] = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run studies (reusing stored runs), then write findings.json, figures, report.md and
    the interactive page index.html."""
    from sgdlab.cli._progress import RunsProgress
    from sgdlab.lab.session import run_studies
    from sgdlab.lab.studies import all_studies

    registry = all_studies()
    if all_ and names:
        raise ConfigError("--all", f"give study names or --all, not both (got {names[0]!r})")
    selected = list(registry) if all_ else list(names or [])
    if not selected:
        raise ConfigError("studies", "give study names or --all (see `sgdlab lab list`)")
    bad = [n for n in selected if n not in registry]
    if bad:
        raise ConfigError("studies", f"unknown study {bad[0]!r}; studies: {', '.join(registry)}")
    runner = executor_from_options(executor, workers, address)
    if store is not None and store.is_dir():
        raise ConfigError("--store", f"{store} is a folder; give a .duckdb file path")
    writable_dir(out, "--out")
    db_path = store_path(store)
    t0 = time.perf_counter()
    with RunsProgress() as bar:
        outcome = run_studies(
            selected, quick=quick, store=db_path, out=out, executor=runner, progress=bar
        )
        bar.finish(f"analysis {sum(outcome.per_study_seconds.values()):.1f}s")
    table = findings_table(outcome.findings)
    console.print(table)
    console.print(
        f"{outcome.runs_total} runs ({outcome.runs_reused} reused from {db_path}) in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    console.print(f"report:   {outcome.report.resolve()}")
    console.print(f"findings: {outcome.findings_json.resolve()}")
    console.print(f"figures:  {outcome.out.resolve()} ({len(outcome.figures)} PNG)")
    for name, error in outcome.failures.items():
        error_line(f"run {name} failed: {error}")
    if outcome.skipped:
        error_line(f"not analysed (a run failed): {', '.join(outcome.skipped)}; the other "
                   "runs and findings are stored")  # fmt: skip
    if outcome.html is not None:
        console.print(f"page:     {outcome.html.resolve()}")
    if outcome.failures:
        raise typer.Exit(1)


def findings_table(findings: list) -> Table:
    """The terminal table of findings, article claims first, a section per kind with its
    tally (labels like ``[inverse_sqrt: …]`` are text, not Rich markup)."""
    from sgdlab.lab.findings import KINDS, tally
    from sgdlab.lab.report import inside, measured, predicted

    table = Table(title="findings", title_justify="left")
    for col in ("kind", "study", "quantity", "measured [95% CI]", "predicted", "in CI",
                "verdict"):  # fmt: skip
        table.add_column(col)
    colors = {"agrees": "green", "disagrees": "red", "inconclusive": "yellow", "no_claim": "dim"}
    for kind in KINDS:
        rows = [f for f in findings if f.kind == kind]
        if not rows:
            continue
        t = tally(findings, kind)
        table.add_section()
        table.add_row(
            f"[bold]{kind}[/]", "", f"[bold]{t['agrees']} agree, {t['disagrees']} disagree, "
            f"{t['inconclusive']} inconclusive[/]", "", "", "", "",
        )  # fmt: skip
        for f in rows:
            table.add_row(
                escape(kind), escape(f.study), escape(f.quantity), escape(measured(f)),
                escape(predicted(f)), inside(f),
                f"[{colors[f.verdict]}]{f.verdict.replace('_', ' ')}[/]",
            )  # fmt: skip
    return table


@app.command("demo")
@guarded
def demo_cmd(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="report folder")] = None,
) -> None:
    """The main job: every lab study in quick mode (reusing stored runs), then the report.

    For the single-run quick start instead: ``sgdlab run examples/quickstart.yaml``.
    """
    run_cmd(names=None, all_=True, quick=True, store=store, out=out, workers=None, executor=None,
            address=None)  # fmt: skip
