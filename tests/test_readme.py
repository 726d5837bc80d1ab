"""The README's first Python example runs as written (and shows the floor growing with η)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    floors = namespace["subopt"][:, -1].reshape(4, 16).mean(axis=1)
    assert np.all(np.diff(floors) > 0)
    assert callable(namespace["sgd_stationary_excess_loss"])
