"""Studies: registered, named units of grid + analysis + findings.

A study subclasses :class:`Study` and is registered with :func:`register`:

* ``name`` (``noise-floor``), ``claim`` (one line for ``sgdlab lab list``), ``section`` of
  the article;
* :meth:`Study.grid` — ``{key: config}`` of the runs it needs (``quick`` selects the small
  settings); chains are vectorized inside each run, and per-chain lr lists sweep step sizes
  within a run;
* :meth:`Study.analyze` — from ``{key: RunResult}`` to a list of
  :class:`~sgdlab.lab.findings.Finding` (verdicts by a rule) and the figures it writes into
  ``ctx.out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding, make_finding

STUDIES: dict[str, type[Study]] = {}


def register(cls: type[Study]) -> type[Study]:
    """Class decorator: add a study to :data:`STUDIES` under ``cls.name``."""
    STUDIES[cls.name] = cls
    return cls


@dataclass
class Context:
    """What an analysis gets besides its runs: the output folder and the mode."""

    out: Path
    quick: bool

    def figure(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name


class Study:
    """Base class of a lab study (see the module docstring)."""

    name: ClassVar[str]
    claim: ClassVar[str]
    section: ClassVar[str] = ""

    def grid(self, quick: bool) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        raise NotImplementedError

    def finding(self, claim: str, quantity: str, measured: float,
                ci: tuple[float, float] | None, **kw: Any) -> Finding:
        """:func:`make_finding` with this study's name."""
        return make_finding(self.name, claim, quantity, measured, ci, **kw)
