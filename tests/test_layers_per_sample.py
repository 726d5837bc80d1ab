"""Exact per-sample kernels of modern layers against the single-sample loop, in float64.

Covers: ``sgdlab.measure.noise._layers`` (Linear on ``[B, T, …]``, Conv, Embedding, HF
``Conv1D``) and ``sgdlab.measure.noise._norm_layers`` (LayerNorm, RMSNorm, GroupNorm,
eval-mode BatchNorm) through ``per_sample_stats(method="fast")`` — every parameter must take
its kernel (``"fast"`` raises otherwise) and agree with ``per_sample_grads(method="loop")``.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads

F64 = torch.float64
#: both sides sum the same O(n·d) products in different orders: a few ε ≈ 2.2e-16 times the
#: number of terms (≤ ~1e3 here) relative; the normalized input x̂ is recomputed by the kernel
#: with torch.var_mean where the layer uses its own kernel (one more rounding of x̂, ~1e-16)
RTOL, ATOL = 1e-12, 1e-14
FIELDS = ("grad_sum", "sq_sum", "norm_sq", "dot")


class Head(nn.Module):
    """``body`` on the input, then a mean over every axis but the batch and a linear head."""

    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body, self.head = body, nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.body(x))
        if h.dim() > 2:  # channels in dim 1 (convolutions, GroupNorm) or last
            h = h.flatten(2).mean(-1) if h.shape[1] == self.head.in_features else h
            h = h.reshape(h.shape[0], -1, self.head.in_features).mean(1)
        return self.head(h)


def rmsnorm() -> nn.Module:
    if not hasattr(nn, "RMSNorm"):
        pytest.skip("nn.RMSNorm needs torch >= 2.4")
    return nn.Sequential(nn.Linear(6, 6), nn.RMSNorm(6))


def hf_conv1d() -> nn.Module:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"transformers must be installed in CI: {exc}")
        pytest.skip(f"transformers not installed: {exc}")
    return nn.Sequential(Conv1D(6, 8), nn.Tanh(), Conv1D(8, 6))  # Conv1D(nf=out, nx=in)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


#: name → (body, head width, input maker, the kernels expected)
CASES = {
    "linear-seq": (
        lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 6)),
        6, lambda n: torch.randn(n, 4, 6, generator=gen(1), dtype=F64), {"linear"},
    ),
    "linear-4d": (
        lambda: nn.Linear(6, 6), 6,
        lambda n: torch.randn(n, 3, 2, 6, generator=gen(2), dtype=F64), {"linear"},
    ),
    "layernorm": (
        lambda: nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6)), 6,
        lambda n: torch.randn(n, 5, 6, generator=gen(3), dtype=F64), {"linear", "layernorm"},
    ),
    "layernorm-2d-no-bias": (
        lambda: nn.Sequential(nn.Linear(6, 6), nn.LayerNorm((5, 6), bias=False)), 6,
        lambda n: torch.randn(n, 5, 6, generator=gen(4), dtype=F64), {"linear", "layernorm"},
    ),
    "rmsnorm": (
        rmsnorm, 6, lambda n: torch.randn(n, 5, 6, generator=gen(5), dtype=F64),
        {"linear", "rmsnorm"},
    ),
    "groupnorm": (
        lambda: nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.GroupNorm(3, 6)), 6,
        lambda n: torch.randn(n, 2, 5, 5, generator=gen(6), dtype=F64), {"conv", "groupnorm"},
    ),
    "groupnorm-1d": (
        lambda: nn.Sequential(nn.Conv1d(2, 6, 3), nn.GroupNorm(2, 6)), 6,
        lambda n: torch.randn(n, 2, 7, generator=gen(7), dtype=F64), {"conv", "groupnorm"},
    ),
    "batchnorm-eval": (
        lambda: nn.Sequential(nn.Conv2d(2, 6, 3), nn.BatchNorm2d(6)).eval(), 6,
        lambda n: torch.randn(n, 2, 5, 5, generator=gen(8), dtype=F64), {"conv", "batchnorm"},
    ),
    "embedding": (
        lambda: nn.Sequential(nn.Embedding(7, 6, padding_idx=0), nn.LayerNorm(6)), 6,
        lambda n: torch.randint(0, 7, (n, 5), generator=gen(9)), {"embedding", "layernorm"},
    ),
    "hf-conv1d": (
        hf_conv1d, 8, lambda n: torch.randn(n, 4, 8, generator=gen(10), dtype=F64),
        {"hf_conv1d"},
    ),
}  # fmt: skip


def build(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor, set[str]]:
    body, width, inputs, kinds = CASES[name]
    torch.manual_seed(0)  # test-side initialisation only
    model = Head(body(), width).double()
    if name == "batchnorm-eval":  # non-trivial running statistics
        bn = model.body[1]
        bn.running_mean.copy_(torch.linspace(-0.5, 0.5, 6))
        bn.running_var.copy_(torch.linspace(0.5, 2.0, 6))
        model.eval()
    x = inputs(9)
    y = torch.randint(0, 3, (9,), generator=gen(11))
    return model, x, y, kinds | {"linear"}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_single_sample_loop(name: str) -> None:
    model, x, y, kinds = build(name)
    loss_fn = nn.CrossEntropyLoss()
    fast = per_sample_stats(model, loss_fn, x, y, reference="mean", method="fast")
    assert set(fast.method.values()) <= kinds and set(fast.method.values()) - {"linear"} == (
        kinds - {"linear"}
    )
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    for field in FIELDS:
        a, b = getattr(fast, field), getattr(ref, field)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=ATOL, msg=f"{field}[{k}]")


def test_loop_reference_is_the_gradient_of_a_batch_of_one() -> None:
    """For a plain mean the reference's g_i is ∇ℓ_i: checked against separate batches of one."""
    model, x, y, _ = build("layernorm")
    loss_fn = nn.CrossEntropyLoss()
    ref = per_sample_grads(model, loss_fn, x, y)
    for i in range(x.shape[0]):
        gs = torch.autograd.grad(loss_fn(model(x[i : i + 1]), y[i : i + 1]), model.parameters())
        for (k, _), g in zip(model.named_parameters(), gs, strict=True):
            torch.testing.assert_close(ref[k][i], g, rtol=RTOL, atol=ATOL)


def test_a_norm_weight_used_outside_its_layer_falls_back_and_stays_exact() -> None:
    class Reused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln = nn.LayerNorm(6)
            self.head = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.ln(x).mean(1) * self.ln.weight)

    torch.manual_seed(0)  # test-side initialisation only
    model = Reused().double()
    x = torch.randn(7, 4, 6, generator=gen(12), dtype=F64)
    y = torch.randint(0, 3, (7,), generator=gen(13))
    loss_fn = nn.CrossEntropyLoss()
    st = per_sample_stats(model, loss_fn, x, y, reference="mean")
    assert st.method["ln.weight"] == "vmap" and st.method["head.weight"] == "linear"
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    for k in st.sq_sum:
        torch.testing.assert_close(st.sq_sum[k], ref.sq_sum[k], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"method='fast'.*'ln'"):
        per_sample_stats(model, loss_fn, x, y, method="fast")


def test_train_mode_batchnorm_has_no_kernel_and_is_refused() -> None:
    model, x, y, _ = build("batchnorm-eval")
    model.train()
    with pytest.raises(ValueError, match="BatchNorm normalizing with batch statistics"):
        per_sample_stats(model, nn.CrossEntropyLoss(), x, y)


class PositionalNet(nn.Module):
    """Token and positional embeddings, ``wpe`` called on ``arange(T)`` (no batch dim, the
    output broadcast over the batch), a LayerNorm and a head over the positions."""

    def __init__(self, t: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(7, 6), nn.Embedding(t, 6)
        self.ln, self.head = nn.LayerNorm(6), nn.Linear(6, 3)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1])
        return self.head(self.ln(self.wte(idx) + self.wpe(pos)).mean(1))


@pytest.mark.parametrize("t,sizes", [(5, (9, 5)), (3, (4, 9))], ids=["n-equals-T", "T-equals-m"])
def test_a_shared_positional_embedding(t: int, sizes: tuple[int, int]) -> None:
    """``wpe(arange(T))`` is expanded over the batch and takes the embedding kernel, also at a
    later batch of n = T samples; where the first-use sub-batch has m = T samples the layout
    cannot be told apart, the check sees the mismatch and sends the table to the fallback."""
    torch.manual_seed(0)  # test-side initialisation only
    model = PositionalNet(t).double()
    loss_fn = nn.CrossEntropyLoss()
    for n in sizes:
        x = torch.randint(0, 7, (n, t), generator=gen(14))
        y = torch.randint(0, 3, (n,), generator=gen(15))
        st = per_sample_stats(model, loss_fn, x, y, reference="mean")
        assert st.method["wpe.weight"] == ("embedding" if t == 5 else "vmap")
        ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
        for field in FIELDS:
            for k, v in getattr(st, field).items():
                torch.testing.assert_close(v, getattr(ref, field)[k], rtol=RTOL, atol=ATOL)


class TiedLM(nn.Module):
    """GPT's tied head: ``head.weight = wte.weight`` (a padding row, a positional table)."""

    def __init__(self) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(7, 6, padding_idx=0), nn.Embedding(4, 6)
        self.ln = nn.LayerNorm(6)
        self.head = nn.Linear(6, 7, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        return self.head(torch.tanh(self.ln(h)))


def test_a_tied_embedding_and_head_table() -> None:
    torch.manual_seed(0)  # test-side initialisation only
    model = TiedLM().double()
    x = torch.randint(0, 7, (9, 4), generator=gen(16))
    y = torch.randint(0, 7, (9, 4), generator=gen(17))

    def loss_fn(out, t):
        return nn.functional.cross_entropy(out.reshape(-1, 7), t.reshape(-1), ignore_index=0)

    st = per_sample_stats(model, loss_fn, x, y, reference="mean", method="fast")
    assert st.method["wte.weight"] == "tied"
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    for field in FIELDS:
        for k, v in getattr(st, field).items():
            torch.testing.assert_close(v, getattr(ref, field)[k], rtol=RTOL, atol=ATOL)
