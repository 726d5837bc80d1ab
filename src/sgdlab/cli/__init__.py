"""The ``sgdlab`` command line (typer + rich): one module per group of commands.

* :mod:`sgdlab.cli.app` — the application, ``--version``, the shared ``--store`` option;
* :mod:`sgdlab.cli.runs` — ``run``, ``runs``, ``show``, ``problems``, ``optimizers``, ``advise``;
* :mod:`sgdlab.cli.measure` — ``sharpness``, ``landscape``;
* :mod:`sgdlab.cli.lab` — ``lab list``, ``lab run``, ``demo``;
* :mod:`sgdlab.cli.sweep` — ``sweep`` (a grid of runs, local, processes or Ray);
* :mod:`sgdlab.cli.report` — ``report`` (the interactive HTML page);
* :mod:`sgdlab.cli.export` — ``export`` (a run as TensorBoard event files);
* :mod:`sgdlab.cli._util` — one-line errors and exit codes, plain tables.
"""

from __future__ import annotations

# importing a command module registers its commands
from sgdlab.cli import export, lab, measure, report, runs, sweep  # noqa: F401
from sgdlab.cli._util import Terminated, ignore_interrupts
from sgdlab.cli.app import app

__all__ = ["app", "main"]

#: the order of `sgdlab --help`
COMMAND_ORDER = (
    "run", "sweep", "runs", "show", "report", "export", "problems", "optimizers", "sharpness",
    "landscape", "advise", "demo",
)  # fmt: skip
app.registered_commands.sort(key=lambda c: COMMAND_ORDER.index(c.name or ""))


def main() -> None:  # pragma: no cover
    """Console entry point: SIGTERM stops a run like Ctrl-C (the run is marked failed)."""
    import signal

    def on_sigterm(signum: int, frame: object) -> None:
        raise Terminated("SIGTERM")

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        app()
    finally:
        ignore_interrupts()  # exiting: a further Ctrl-C prints no shutdown traceback


if __name__ == "__main__":  # pragma: no cover
    main()
