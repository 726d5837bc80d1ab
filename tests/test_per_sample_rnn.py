"""Recurrent layers (LSTM, GRU, packed sequences) in the per-sample instruments, and ``method=``.

Covers: ``sgdlab.measure.noise._fallback`` (recurrent parameters routed to the per-sample
loop under ``method="auto"``; a clear error for ``method="vmap"`` where ``torch.func`` cannot
differentiate them; no torch warning) and ``gradient_noise(method=...)``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from sgdlab.measure import gradient_noise
from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads

RTOL, ATOL = 1e-12, 1e-14  # float64 rounding (see tests/test_layers_per_sample.py)


class Recurrent(nn.Module):
    """Embedding → LSTM/GRU (batch first, optionally packed by the lengths) → head."""

    def __init__(self, cell: type[nn.RNNBase], packed: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(9, 5)
        self.rnn = cell(5, 6, batch_first=True)
        self.head = nn.Linear(6, 3)
        self.packed = packed

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        e = self.emb(idx)
        if self.packed:
            seq = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
            _, h = self.rnn(seq)
        else:
            _, h = self.rnn(e)
        h = h[0] if isinstance(h, tuple) else h  # LSTM: (h, c)
        return self.head(h[-1])


def batch(n: int = 7):
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 9, (n, 5), generator=g)
    lengths = torch.randint(1, 6, (n,), generator=g)
    return (idx, lengths), torch.randint(0, 3, (n,), generator=g)


def build(cell, dtype, packed=False) -> nn.Module:
    torch.manual_seed(0)  # test-side initialisation only
    return Recurrent(cell, packed).to(dtype)


@pytest.mark.parametrize(
    "cell,dtype,packed",
    [
        (nn.GRU, torch.float64, False),
        (nn.LSTM, torch.float64, False),
        (nn.GRU, torch.float64, True),
        (nn.LSTM, torch.float32, False),
    ],
    ids=["gru64", "lstm64", "gru-packed", "lstm32"],
)
def test_recurrent_layers_take_the_loop_and_match_the_reference(cell, dtype, packed) -> None:
    model = build(cell, dtype, packed)
    x, y = batch()
    loss_fn = nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither torch's RNN warnings nor ours
        st = per_sample_stats(model, loss_fn, x, y, reference="mean")
    assert st.method["rnn.weight_hh_l0"] == "loop"
    assert st.method["emb.weight"] == "embedding" and st.method["head.weight"] == "linear"
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    rtol, atol = (RTOL, ATOL) if dtype == torch.float64 else (1e-5, 1e-7)
    for field in ("grad_sum", "sq_sum", "norm_sq", "dot"):
        for k in getattr(st, field):
            a, b = getattr(st, field)[k], getattr(ref, field)[k]
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"{field}[{k}]")


def test_vmap_on_a_gru_is_a_clear_error_and_fast_names_the_module() -> None:
    model = build(nn.GRU, torch.float64)
    x, y = batch()
    with pytest.raises(ValueError, match=r"method='vmap'.*method='loop'"):
        per_sample_stats(model, nn.CrossEntropyLoss(), x, y, method="vmap")
    with pytest.raises(ValueError, match=r"method='fast'.*'rnn'"):
        per_sample_stats(model, nn.CrossEntropyLoss(), x, y, method="fast")
    with pytest.raises(ValueError, match="method must be one of"):
        per_sample_stats(model, nn.CrossEntropyLoss(), x, y, method="fastest")


@pytest.mark.parametrize("method", ["auto", "loop"])
def test_gradient_noise_forwards_method(method: str) -> None:
    model = build(nn.LSTM, torch.float64)
    x, y = batch(8)
    st = gradient_noise(model, nn.CrossEntropyLoss(), x, y, method=method)
    flat = torch.cat(
        [g.reshape(8, -1) for g in per_sample_grads(model, nn.CrossEntropyLoss(), x, y).values()],
        1,
    )
    assert abs(st.trace_cov - float(flat.var(0).sum())) <= 1e-12 * st.trace_cov
    assert st.method["rnn.weight_ih_l0"] == "loop"
