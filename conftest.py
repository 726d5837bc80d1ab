"""Root conftest: names every doctest of the package may use without importing them."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _doctest_names(doctest_namespace: dict) -> None:
    doctest_namespace.update(np=np, torch=torch)
