"""One progress display over all runs of a batch (lab sessions and sweeps).

:class:`RunsProgress` is the callback of :func:`sgdlab.lab.dispatch.dispatch` (and of a
lab session, which adds ``analyze`` and ``page``): one bar counting every run of the
batch — runs reused from the store count as done from the start, failed runs as done and
named in the status — whatever executes them (local, processes, Ray). Failures are also
printed as they happen, one line each.
"""

from __future__ import annotations

from types import TracebackType

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sgdlab.cli._util import err


class RunsProgress:
    """A Rich progress bar on stderr: ``runs ━━━ 45/72 · 30 reused · 1 failed · elapsed``."""

    def __init__(self, what: str = "runs") -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description:<9}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=err,
        )
        self.task = self.bar.add_task(what, total=None, status="")
        self.reused = 0
        self.failed = 0
        self.stage = ""

    def __enter__(self) -> RunsProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.bar.__exit__(et, ev, tb)

    def _status(self) -> str:
        parts = [f"{self.reused} reused"] if self.reused else []
        if self.failed:
            parts.append(f"[red]{self.failed} failed[/]")
        if self.stage:
            parts.append(escape(self.stage))
        return " · ".join(parts)

    def __call__(self, event: str, label: str, done: int, total: int) -> None:
        """The ``(event, label, done, total)`` callback (see :mod:`sgdlab.lab.dispatch`)."""
        if event == "reused":
            self.reused = done
            self.bar.update(self.task, completed=done, total=total, status=self._status())
        elif event in ("run", "failed"):
            if event == "failed":
                self.failed += 1
                self.bar.console.print(f"[red]failed:[/] {escape(label)}", highlight=False)
            self.bar.update(self.task, completed=done, total=total, status=self._status())
        elif event == "analyze":
            self.stage = f"analysing {label}"
            self.bar.update(self.task, status=self._status())
        elif event == "page":
            self.stage = f"writing {label}"
            self.bar.update(self.task, status=self._status())

    def finish(self, note: str = "") -> None:
        self.stage = note
        self.bar.update(self.task, status=self._status())
