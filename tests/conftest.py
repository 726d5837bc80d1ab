"""Shared fixtures: the lab's quick run, executed once per test session for every study."""

from __future__ import annotations

import pytest

from sgdlab.lab.executor import ProcessExecutor
from sgdlab.lab.session import run_studies
from sgdlab.lab.studies import all_studies


@pytest.fixture(scope="session")
def quick_lab(tmp_path_factory):
    """Every built-in study in quick mode, run once (into one store) for all the tests that
    assert the lab's verdicts (test_lab_studies, test_lab_benefits, test_lab_batch). Two
    worker processes: the results are bit-identical to the local executor's (tested in
    test_lab_framework and test_ray), in about half the time on 2 cores."""
    out = tmp_path_factory.mktemp("quick-lab")
    return run_studies(list(all_studies()), quick=True, store=out / "s.duckdb", out=out,
                       executor=ProcessExecutor(workers=2))  # fmt: skip
