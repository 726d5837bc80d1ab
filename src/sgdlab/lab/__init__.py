"""The lab: registered studies that test the article's claims with numbers.

* :class:`~sgdlab.lab.study.Study` — grid of run configs + analysis → findings;
* :class:`~sgdlab.lab.findings.Finding` — claim, measured [CI], predicted, verdict (by rule);
* :class:`~sgdlab.lab.executor.LocalExecutor` / :class:`~sgdlab.lab.executor.ProcessExecutor` /
  :class:`~sgdlab.lab.executor.RayExecutor` (a failed run is a
  :class:`~sgdlab.lab.executor.RunFailure`);
* :func:`~sgdlab.lab.session.run_studies` — store reuse, execution, findings.json, report.md,
  index.html.

See ``docs/lab.md``.
"""

from sgdlab.lab.executor import Executor, LocalExecutor, ProcessExecutor, RayExecutor, RunFailure
from sgdlab.lab.findings import Finding, make_finding
from sgdlab.lab.session import run_studies
from sgdlab.lab.studies import all_studies
from sgdlab.lab.study import STUDIES, Context, Study, register

__all__ = [
    "STUDIES",
    "Context",
    "Executor",
    "Finding",
    "LocalExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "RunFailure",
    "Study",
    "all_studies",
    "make_finding",
    "register",
    "run_studies",
]
