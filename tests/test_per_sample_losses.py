"""Per-sample statistics of losses that are not a plain mean: class weights, ``sum``,
token-level cross-entropy with ``ignore_index`` padding (first seen late in the batch), label
smoothing — the per-sample gradient under the loss's own normalization.

Covers: ``sgdlab.measure.noise.per_sample`` (the definition g_i = n J_iᵀδ_i + r), the fast
path, the vmap fallback and the loop, each against the loop reference
(``per_sample_grads(method="loop")``) in float64, and the reference against closed forms.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgdlab.measure import gradient_noise
from sgdlab.measure.noise.per_sample import per_sample_grads, per_sample_stats, stats_from_grads
from test_measure_noise_per_sample import Scale  # a parametric module without a kernel

F64 = torch.float64
RTOL, ATOL = 1e-12, 1e-14  # float64 rounding of sums of ≤ ~1e3 terms (see test_layers_…)
V, T, PAD = 11, 6, -100


class TinyLM(nn.Module):
    """Embedding → Linear on ``[B, T, D]`` → custom Scale → vocabulary head: logits
    ``[B, T, V]``."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 8)
        self.mix = nn.Linear(8, 8)
        self.scale = Scale(8)
        self.head = nn.Linear(8, V)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.scale(self.mix(self.emb(idx))))


def token_ce(**kw):
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), **kw)

    return loss


def lm_batch(n: int = 9):
    """Padding only from sample 5 on (a 3-sample check would never see it)."""
    g = torch.Generator().manual_seed(21)
    idx = torch.randint(0, V, (n, T), generator=g)
    tgt = torch.randint(0, V, (n, T), generator=g)
    for i, keep in zip(range(5, n), (2, 4, 1, 5), strict=False):
        tgt[i, keep:] = PAD
    return idx, tgt


def lm() -> nn.Module:
    torch.manual_seed(0)  # test-side initialisation only
    return TinyLM().double()


def classifier():
    torch.manual_seed(0)  # test-side initialisation only
    model = nn.Sequential(nn.Linear(4, 6), Scale(6), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(10, 4, generator=g, dtype=F64)
    y = torch.tensor([0, 0, 0, 1, 2, 1, 2, 0, 1, 2])  # the first samples all of one class
    return model, x, y


LOSSES = {
    "class-weights": nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0, 0.5], dtype=F64)),
    "sum": nn.CrossEntropyLoss(reduction="sum"),
    "label-smoothing": nn.CrossEntropyLoss(label_smoothing=0.1),
}


def assert_same(a, b) -> None:
    for field in ("grad_sum", "sq_sum", "norm_sq", "dot"):
        for k in getattr(a, field):
            torch.testing.assert_close(
                getattr(a, field)[k], getattr(b, field)[k], rtol=RTOL, atol=ATOL, msg=field
            )


@pytest.mark.parametrize("method", ["auto", "vmap", "loop"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_classifier_losses_match_the_reference(name: str, method: str) -> None:
    model, x, y = classifier()
    loss_fn = LOSSES[name]
    st = per_sample_stats(model, loss_fn, x, y, reference="mean", method=method)
    if method == "auto":
        assert st.method["0.weight"] == "linear" and st.method["1.scale"] == "vmap"
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    assert_same(st, ref)
    grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    for (k, _), g in zip(model.named_parameters(), grads, strict=True):  # ḡ = ∇L exactly
        torch.testing.assert_close(st.grad_mean[k], g, rtol=RTOL, atol=ATOL)


def test_class_weight_reference_is_the_weighted_share() -> None:
    """g_i = n w_{y_i} / Σ_j w_{y_j} · ∇ℓ_i, ℓ_i the unweighted loss of sample i alone."""
    model, x, y = classifier()
    w = LOSSES["class-weights"].weight
    ref = per_sample_grads(model, LOSSES["class-weights"], x, y)
    n, total = x.shape[0], float(w[y].sum())
    names = [k for k, _ in model.named_parameters()]
    for i in range(n):
        li = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        gi = torch.autograd.grad(li, list(model.parameters()))
        share = n * float(w[y[i]]) / total
        for k, g in zip(names, gi, strict=True):
            torch.testing.assert_close(ref[k][i], share * g, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("method", ["auto", "vmap", "loop"])
def test_padded_token_loss_matches_the_reference(method: str) -> None:
    model, (idx, tgt) = lm(), lm_batch()
    loss_fn = token_ce(ignore_index=PAD)
    st = per_sample_stats(model, loss_fn, idx, tgt, reference="mean", method=method)
    if method == "auto":
        assert st.method["emb.weight"] == "embedding" and st.method["scale.scale"] == "vmap"
        assert st.method["mix.weight"] == "linear"
    assert_same(st, stats_from_grads(per_sample_grads(model, loss_fn, idx, tgt), reference="mean"))


def test_padded_reference_is_the_per_sequence_gradient() -> None:
    """g_i = n (T_i / T_batch) ∇ℓ̄_i, ℓ̄_i the mean over sample i's T_i real tokens."""
    model, (idx, tgt) = lm(), lm_batch()
    loss_fn = token_ce(ignore_index=PAD)
    ref = per_sample_grads(model, loss_fn, idx, tgt)
    n, counts = idx.shape[0], (tgt != PAD).sum(1)
    for i in range(n):
        li = loss_fn(model(idx[i : i + 1]), tgt[i : i + 1])
        gi = torch.autograd.grad(li, list(model.parameters()))
        share = n * float(counts[i]) / float(counts.sum())
        for (k, _), g in zip(model.named_parameters(), gi, strict=True):
            torch.testing.assert_close(ref[k][i], share * g, rtol=RTOL, atol=ATOL)


def test_padding_first_seen_late_changes_nothing_between_paths() -> None:
    """The issue's case: tr Σ from gradient_noise (fast path + fallback) equals the reference's
    whatever sample the padding first appears in (it was −5.6% off with a 3-sample check)."""
    model, (idx, tgt) = lm(), lm_batch()
    loss_fn = token_ce(ignore_index=PAD)
    grads = per_sample_grads(model, loss_fn, idx, tgt)
    flat = torch.cat([g.reshape(idx.shape[0], -1) for g in grads.values()], 1)
    want = float(flat.var(0).sum())
    got = gradient_noise(model, loss_fn, idx, tgt, mode="eval").trace_cov
    assert abs(got - want) <= 1e-12 * want
