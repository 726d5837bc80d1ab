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
    theory = [
        namespace["sgd_stationary_excess_loss"](namespace["A"], namespace["C"], eta, b=8)
        for eta in (0.01, 0.03, 0.1, 0.3)
    ]
    # 16 independent chains per step size: the mean of their last excess losses is within
    # 4 standard errors of the exact stationary level (fixed seed)
    last = namespace["subopt"][:, -1].reshape(4, 16)
    se = last.std(axis=1, ddof=1) / np.sqrt(16)
    assert np.all(np.abs(floors - np.array(theory)) <= 4 * se)
