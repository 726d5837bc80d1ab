"""Without its optional package, an integration fails in one line naming what to install —
never a raw ImportError traceback — and ``import sgdlab.integrations`` needs none of them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import _report_fixtures as fx
from sgdlab.cli import app
from sgdlab.integrations import OptionalDependencyError


@pytest.mark.parametrize(("module", "blocked", "package"), [
    ("sgdlab.integrations.lightning", "lightning.pytorch", "lightning"),
    ("sgdlab.integrations.huggingface", "transformers", "transformers"),
])  # fmt: skip
def test_a_missing_framework_is_one_clear_error(monkeypatch, module, blocked, package):
    monkeypatch.setitem(sys.modules, blocked, None)  # import of it raises ImportError
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(OptionalDependencyError, match=f"pip install {package}") as info:
        importlib.import_module(module)
    assert isinstance(info.value, ImportError) and "\n" not in str(info.value)


def test_export_without_tensorboard_is_one_line_and_writes_nothing(monkeypatch, tmp_path):
    store = tmp_path / "s.duckdb"
    rid = fx.monitor_run(store, steps=4)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "tb"
    res = CliRunner().invoke(app, ["export", rid, "--tensorboard", str(out),
                                   "--store", str(store)])  # fmt: skip
    assert res.exit_code == 1, res.output
    assert "pip install tensorboard" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not out.exists()


def test_the_package_imports_no_framework():
    code = ("import sys, sgdlab.integrations, sgdlab.integrations.tensorboard; "
            "print(sorted(m for m in ('lightning', 'transformers', 'tensorboard') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
