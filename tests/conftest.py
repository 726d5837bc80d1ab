"""Shared fixtures: the lab's quick run, executed once per test session for every study."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from filelock import FileLock

from sgdlab.lab.executor import ProcessExecutor
from sgdlab.lab.session import LabOutcome, run_studies
from sgdlab.lab.studies import all_studies


def _run_quick_lab(out: Path) -> LabOutcome:
    return run_studies(list(all_studies()), quick=True, store=out / "s.duckdb", out=out,
                       executor=ProcessExecutor(workers=2))  # fmt: skip


@pytest.fixture(scope="session")
def quick_lab(tmp_path_factory):
    """Every built-in study in quick mode, run once (into one store) for all the tests that
    assert the lab's verdicts (test_lab_studies, test_lab_benefits, test_lab_batch,
    test_lab_sources, test_lab_debugging). Two worker processes: the results are
    bit-identical to the local executor's (tested in test_lab_framework and test_ray), in
    about half the time on 2 cores.

    Under pytest-xdist the run is shared by the test workers through a file lock in their
    common temporary folder: the first worker to need it runs it and pickles the outcome, the
    others wait and load it. (The lab tests also carry ``xdist_group("quick_lab")``, but
    pytest-xdist 3.8's ``loadgroup`` does not group under pytest ≥ 9.2 — it renames
    ``item._nodeid``, which pytest no longer reads — so the lock is what keeps it to one run.)"""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _run_quick_lab(tmp_path_factory.mktemp("quick-lab"))
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker
    cache = shared / "quick-lab.pickle"
    with FileLock(str(shared / "quick-lab.lock")):
        if cache.exists():
            return pickle.loads(cache.read_bytes())
        out = shared / "quick-lab"
        out.mkdir(exist_ok=True)
        outcome = _run_quick_lab(out)
        cache.write_bytes(pickle.dumps(outcome))
        return outcome
