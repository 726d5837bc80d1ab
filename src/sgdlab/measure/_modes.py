"""Which function the instruments measure: module modes (private to :mod:`sgdlab.measure`).

``"auto"`` is the function being trained without its dropout noise: every module keeps its
own mode (a train-mode BatchNorm normalizes with batch statistics, as in the training step),
except the modules whose only train-mode behaviour is dropout — ``nn.Dropout*`` and
``nn.MultiheadAttention`` (its attention dropout) — which are put in eval mode. Dropout that a
module applies itself from its own ``training`` flag (HF attention's ``attn_pdrop``) stays on:
set that rate to 0, or use ``"eval"``, for a deterministic measurement.
"""

from __future__ import annotations

from torch import nn

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
