"""Optional dependencies of the integration tests (lightning, transformers, tensorboard).

Where one is missing the test skips with a message naming the package — except in CI
(``CI`` set, as ``.ci/run`` does), where it fails: ``make setup`` installs them there, so a
missing one is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def need(module: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or skip (fail in CI) with the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = (f"{module} is not installed ({exc}); `make setup` or "
               f"`pip install {package or module}` installs it")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(f"the integration tests must run in CI: {why}")
        pytest.skip(why)


def _monitor_has_the_issue14_interface() -> bool:
    import inspect

    from sgdlab.monitor import Monitor

    return ("sinks" in inspect.signature(Monitor).parameters
            and "batch_size" in inspect.signature(Monitor.step).parameters)  # fmt: skip


#: the callbacks call ``Monitor(..., sinks=...)`` and ``mon.step(..., batch_size=...)`` (the
#: interface agreed in issue 14); until the Monitor has them their tests skip
needs_monitor_interface = pytest.mark.skipif(
    not _monitor_has_the_issue14_interface(),
    reason="the Monitor has no sinks= / step(batch_size=) yet (issue 14, the Monitor's part)",
)
