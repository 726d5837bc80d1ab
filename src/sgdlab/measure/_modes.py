"""Which function the instruments measure, and how attention runs (private to
:mod:`sgdlab.measure`).

``"auto"`` is the function being trained without its dropout noise: every module keeps its
own mode (a train-mode BatchNorm normalizes with batch statistics, as in the training step),
except the modules whose only train-mode behaviour is dropout — ``nn.Dropout*`` and
``nn.MultiheadAttention`` (its attention dropout) — which are put in eval mode. Dropout that a
module applies itself from its own ``training`` flag (HF attention's ``attn_pdrop``) stays on:
set that rate to 0, or use ``"eval"``, for a deterministic measurement.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

try:  # torch ≥ 2.3
    from torch.nn.attention import SDPBackend as _SDPBackend
    from torch.nn.attention import sdpa_kernel as _sdpa_kernel
except ImportError:  # pragma: no cover - torch 2.2
    _SDPBackend = _sdpa_kernel = None  # type: ignore[assignment, misc]

MODES = ("auto", "eval", "train", None)
DROPOUT_ONLY = (nn.modules.dropout._DropoutNd, nn.MultiheadAttention)


def apply_mode(model: nn.Module, mode: str | None) -> None:
    """Put ``model`` in ``mode`` (the caller saves and restores the ``training`` flags)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'auto', 'eval', 'train' or None, not {mode!r}")
    if mode == "auto":
        for m in model.modules():
            if isinstance(m, DROPOUT_ONLY):
                m.eval()
    elif mode is not None:
        model.train(mode == "train")


def math_attention() -> contextlib.AbstractContextManager:
    """Force the math backend of ``F.scaled_dot_product_attention`` inside the block; the
    previous choice is restored on exit. It is the only backend with a double backward (the
    curvature instruments need it) and with ``torch.func`` batching rules (the CPU flash kernel
    has none: vmap runs it in a per-sample loop and warns of a "performance drop" per call)."""
    if _sdpa_kernel is not None:  # torch ≥ 2.3
        return _sdpa_kernel(_SDPBackend.MATH)
    return torch.backends.cuda.sdp_kernel(  # torch 2.2: the flags also govern the CPU kernels
        enable_flash=False, enable_math=True, enable_mem_efficient=False
    )
