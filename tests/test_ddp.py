"""The Monitor under real DistributedDataParallel: two gloo processes on 127.0.0.1.

Each test starts two ranks of ``tests/_ddp_worker.py`` with a hard timeout (a hang fails the
test instead of blocking CI). Checked:

* the trajectory with the Monitor is bit-identical to the plain DDP run (the local-norm
  communication hook performs exactly DDP's default all-reduce);
* the noise scale's two-batch pairs are this rank's local gradient (batch b) and the
  all-reduced one (batch W·b), read during the user's backward: the recorded noise scale
  equals a single-process recomputation on the same global batch — the gradients of the two
  halves at the parameters before each step, fed to ``NoiseScaleEstimator`` — to float32
  rounding (rel 1e-4: ε = 1.2e-7 amplified by the two-batch difference's cancellation,
  |G_r|²/|G|²-estimate ≲ 100 here, plus DDP's summation order);
* with ``all_ranks=True`` the two ranks record the same noise scale (their local norms are
  averaged by one all-reduce), and the temperature uses the global batch W·b;
* rank 0 is the store's only writer: one run, complete;
* a Monitor on rank 0 only, on a BatchNorm CNN (whose first measurement used to run a forward
  through DDP on one rank: a broadcast the other rank never joined), does not deadlock.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sgdlab.measure.noise import NoiseScaleEstimator
from sgdlab.store import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _ddp_worker as worker  # noqa: E402

TIMEOUT = 120

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(case: str, tmp_path: Path) -> tuple[dict, dict, Path]:
    store = tmp_path / "ddp.duckdb"
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = str(HERE / "_ddp_worker.py")
    args = lambda r: [sys.executable, script, str(r), "2", str(port), case, str(tmp_path),  # noqa: E731
                      str(store)]  # fmt: skip
    procs = [
        subprocess.Popen(
            args(r), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for r in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT)
            outputs.append(out)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"DDP case {case} did not finish within {TIMEOUT} s (a hang)")
    for r, (p, out) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"rank {r} failed:\n{out[-3000:]}"
    load = lambda r: torch.load(tmp_path / f"rank{r}.pt", weights_only=False)  # noqa: E731
    return load(0), load(1), store


def reference_pairs(case: str, rank0: dict) -> list[tuple[float, float]]:
    """(mean_r |G_r|², |mean_r G_r|²) at the parameters before each step, one process."""
    model = worker.build(case)
    loss_fn = nn.CrossEntropyLoss()
    pairs = []
    for state, (gx, gy) in zip(rank0["before"], rank0["batches"], strict=True):
        model.load_state_dict(state)
        model.train()
        grads = []
        for r in range(2):
            sl = slice(r * worker.LOCAL_B, (r + 1) * worker.LOCAL_B)
            loss = loss_fn(model(gx[sl]), gy[sl])
            g = torch.autograd.grad(loss, list(model.parameters()))
            grads.append(torch.cat([t.reshape(-1) for t in g]).double())
        mean = (grads[0] + grads[1]) / 2
        pairs.append((float(sum(g @ g for g in grads)) / 2, float(mean @ mean), grads))
    return pairs


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ddp_transformer_all_ranks(tmp_path: Path) -> None:
    r0, r1, store = launch("transformer", tmp_path)
    for rank in (r0, r1):  # the Monitor left DDP's trajectory unchanged
        for p, q in zip(rank["plain"]["params"], rank["watched"]["params"], strict=True):
            assert torch.equal(p, q)
    m0, m1 = r0["watched"]["metrics"], r1["watched"]["metrics"]
    # ranks agree exactly: the same averaged local norm and the same all-reduced gradient
    torch.testing.assert_close(m0["noise_scale"][1], m1["noise_scale"][1], rtol=0, atol=0,
                               equal_nan=True)  # fmt: skip
    assert m0["grad_norm_sq_local"][1].tolist() == m1["grad_norm_sq_local"][1].tolist()
    # and agree with one process on the same global batch: the pairs, then the estimator
    est = NoiseScaleEstimator(beta=0.9)
    expected = []
    pairs = reference_pairs("transformer", r0["watched"])
    for small, big, _ in pairs:
        est.update(small, big, worker.LOCAL_B, 2 * worker.LOCAL_B)
        expected.append(est.b_simple if math.isfinite(est.b_simple) else math.nan)
    assert m0["grad_norm_sq_local"][1][0].tolist() == pytest.approx([p[0] for p in pairs], rel=1e-5)
    assert m0["grad_norm_sq_global"][1][0].tolist() == pytest.approx(
        [p[1] for p in pairs], rel=1e-5
    )
    got = m0["noise_scale"][1][0].tolist()
    assert got == pytest.approx(expected, rel=1e-4, nan_ok=True)
    assert sum(math.isfinite(v) for v in got) >= 3, got  # the comparison is not vacuous
    # the temperature and batch size are the global batch's
    assert set(m0["batch_size"][1][0].tolist()) == {2 * worker.LOCAL_B}
    d = sum(p.numel() for p in r0["watched"]["params"])
    tr, temp = m0["trace_cov"][1][0], m0["temperature"][1][0]
    expected_t = worker.LR / (1 - worker.MOMENTUM) * tr / d / (2 * 2 * worker.LOCAL_B)
    assert temp.tolist() == pytest.approx(expected_t.tolist(), rel=1e-12)
    # one writer
    runs = Store(store).runs()
    assert [r["status"] for r in runs] == ["complete"]
    assert runs[0]["run_id"] == r0["watched"]["run_id"]
    assert "store_rank" in r1["watched"]["events"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ddp_batchnorm_monitor_on_rank0_only_does_not_deadlock(tmp_path: Path) -> None:
    r0, r1, store = launch("bn_rank0", tmp_path)
    assert r1["watched"]["metrics"] is None  # rank 1 ran no Monitor
    for rank in (r0, r1):
        for p, q in zip(rank["plain"]["params"], rank["watched"]["params"], strict=True):
            assert torch.equal(p, q)
    m0 = r0["watched"]["metrics"]
    # without all_ranks, rank 0's pair is its own local gradient against the global one
    est = NoiseScaleEstimator(beta=0.9)
    expected, local = [], []
    for _, big, grads in reference_pairs("bn_rank0", r0["watched"]):
        local.append(float(grads[0] @ grads[0]))
        est.update(local[-1], big, worker.LOCAL_B, 2 * worker.LOCAL_B)
        expected.append(est.b_simple if math.isfinite(est.b_simple) else math.nan)
    assert m0["grad_norm_sq_local"][1][0].tolist() == pytest.approx(local, rel=1e-5)
    got = m0["noise_scale"][1][0].tolist()
    assert got == pytest.approx(expected, rel=1e-4, nan_ok=True)
    assert sum(math.isfinite(v) for v in got) >= 3, got
    assert "batchnorm_train" in r0["watched"]["events"]
    assert [r["status"] for r in Store(store).runs()] == ["complete"]
