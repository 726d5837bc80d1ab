"""The ``sgdlab`` Typer application: the root command, shared options and the store path.

Commands are registered on :data:`app` by :mod:`sgdlab.cli.runs`, :mod:`sgdlab.cli.measure`
and :mod:`sgdlab.cli.lab`. Every command exits 0 on success, 2 on a bad config or argument
(one line naming the field), 1 on other errors (:func:`sgdlab.cli._util.guarded`).

The commands import the heavy parts of sgdlab (torch, the engine) inside their bodies, so
that ``sgdlab --help`` and a mistyped option answer without loading them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sgdlab._version import __version__
from sgdlab.cli._util import make_console
from sgdlab.defaults import default_store_path

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure, control and exploit the randomness of SGD.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
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


console = make_console()

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="DuckDB results file (default: ./sgdlab-results/sgdlab.duckdb)"),
]


def store_path(store: Path | None) -> Path:
    """The ``--store`` given, else the default store (``$SGDLAB_STORE`` or
    ./sgdlab-results/sgdlab.duckdb)."""
    return store if store is not None else default_store_path()
