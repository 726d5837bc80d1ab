"""Curvature on attention and on train-mode BatchNorm: exact, and the function being trained.

Covers: ``sgdlab.measure.curvature.objective`` (``math_attention`` forced inside every
evaluation and restored; ``mode="auto"``). The Hessian-vector products are checked against
central differences of gradients in float64 (an independent route: only first derivatives,
which every attention backend has): error O(ε²·|∇³L|) + O(ε_mach/ε); with ε = 1e-4 both are
≲ 1e-8 relative, so 1e-6 leaves room without hiding a wrong product (which is off by O(1)).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sgdlab.measure import (
    HessianOperator,
    ModelObjective,
    hessian_eigs,
    per_sample_grads,
    per_sample_stats,
    stats_from_grads,
)

F64 = torch.float64
EPS, RTOL = 1e-4, 1e-6


class SDPA(nn.Module):
    """One causal attention head through F.scaled_dot_product_attention, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split(8, -1)
        h = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(h.flatten(1))


def encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    return nn.Sequential(nn.TransformerEncoder(layer, 1), nn.Flatten(), nn.Linear(8 * 5, 3))


def hf_gpt2():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(
        vocab_size=13, n_positions=8, n_embd=8, n_layer=1, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,  # HF applies attention dropout itself
        attn_implementation="sdpa",
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg)


def gpt2_loss(out, y):
    return nn.functional.cross_entropy(out.logits.reshape(-1, 13), y.reshape(-1))


def case(name: str):
    torch.manual_seed(0)  # test-side initialisation only
    g = torch.Generator().manual_seed(1)
    if name == "hf-gpt2":
        model = hf_gpt2().double().train()
        x = torch.randint(0, 13, (4, 6), generator=g)
        return model, gpt2_loss, x, torch.randint(0, 13, (4, 6), generator=g)
    model = (SDPA() if name == "sdpa" else encoder()).double().train()
    x = torch.randn(6, 5, 8, generator=g, dtype=F64)
    return model, nn.CrossEntropyLoss(), x, torch.randint(0, 3, (6,), generator=g)


@pytest.mark.parametrize("name", ["encoder", "sdpa", "hf-gpt2"])
def test_hvp_on_attention_is_exact_and_the_backend_restored(name: str) -> None:
    model, loss_fn, x, y = case(name)
    flags = torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()
    obj = ModelObjective(model, loss_fn, x, y)
    op = HessianOperator.from_objective(obj, obj.w0)
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(2), dtype=F64)
    v /= v.norm()  # a step of length ε
    hv = op.matvec(v)
    fd = (obj.value_and_grad(obj.w0 + EPS * v)[1] - obj.value_and_grad(obj.w0 - EPS * v)[1]) / (
        2 * EPS
    )
    assert float((hv - fd).norm()) <= RTOL * float(hv.norm())
    res = hessian_eigs(model, loss_fn, x, y, k=1)
    assert res.converged and float(res.values[0]) > 0
    after = torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()
    assert after == flags and model.training


def test_per_sample_statistics_on_an_encoder_match_the_loop() -> None:
    model, loss_fn, x, y = case("encoder")
    model.eval()
    st = per_sample_stats(model, loss_fn, x, y, reference="mean")
    ref = stats_from_grads(per_sample_grads(model, loss_fn, x, y), reference="mean")
    for k in st.sq_sum:
        torch.testing.assert_close(st.sq_sum[k], ref.sq_sum[k], rtol=1e-12, atol=1e-14)
    assert st.method["2.weight"] == "linear"
    assert st.method["0.layers.0.self_attn.in_proj_weight"] == "vmap"


def test_batchnorm_curvature_measures_the_training_function() -> None:
    torch.manual_seed(0)  # test-side initialisation only
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2)
    ).double()
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(8, 1, 6, 6, generator=g, dtype=F64), torch.randint(0, 2, (8,), generator=g)
    running = model[1].running_mean.clone()
    obj = ModelObjective(model, nn.CrossEntropyLoss(), x, y)  # default: mode="auto"
    want = float(nn.functional.cross_entropy(copy.deepcopy(model).train()(x), y).detach())
    assert abs(float(obj(obj.w0)) - want) <= 1e-12 * want  # batch statistics, as in training
    ev = ModelObjective(model, nn.CrossEntropyLoss(), x, y, mode="eval")
    assert abs(float(ev(ev.w0)) - want) > 1e-3 * want  # the eval network: another function
    lam = hessian_eigs(model, nn.CrossEntropyLoss(), x, y, k=1).values[0]
    lam_eval = hessian_eigs(model, nn.CrossEntropyLoss(), x, y, k=1, mode="eval").values[0]
    assert abs(float(lam - lam_eval)) > 1e-3 * abs(float(lam))
    assert torch.equal(model[1].running_mean, running) and model.training
