"""Gradient clipping per chain, in PyTorch's arithmetic.

Each chain ``k`` is clipped on its own, over all ``d`` coordinates of its flat gradient
``g_k = grads[k]`` (one chain = one model, so this is the model's global norm).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["clip_by_global_norm", "clip_by_value", "global_norm"]


def _per_chain(value: float | Tensor, like: Tensor) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t[:, None] if t.ndim == 1 else t


def global_norm(grads: Tensor) -> Tensor:
    """Euclidean norm of each chain's gradient, ``‖g_k‖₂``: ``[K, d]`` → ``[K]``."""
    return torch.linalg.vector_norm(grads, ord=2, dim=1)


def clip_by_global_norm(grads: Tensor, max_norm: float | Tensor) -> Tensor:
    """Rescale each chain's gradient to norm at most ``max_norm``.

    ``g_k ← g_k · min(1, c_k / (‖g_k‖₂ + 1e-6))``, exactly
    ``torch.nn.utils.clip_grad_norm_(…, max_norm=c_k)`` applied to chain ``k`` alone
    (the 1e-6 guards a zero gradient; a clipped norm is therefore slightly below ``c_k``).

    Args:
        grads: ``[K, d]``.
        max_norm: ``c``, a float or ``Tensor[K]`` (``inf`` disables clipping for that chain).

    Returns:
        The clipped gradients ``[K, d]`` (a new tensor; ``grads`` is unchanged).

    Reference: Pascanu, Mikolov & Bengio (2013), *On the difficulty of training recurrent
    neural networks*, Algorithm 1.

    Example:
        >>> g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
        >>> clip_by_global_norm(g, 1.0).norm(dim=1).round(decimals=4).tolist()
        [1.0, 0.5]
    """
    c = torch.as_tensor(max_norm, dtype=grads.dtype, device=grads.device)
    coef = torch.clamp(c / (global_norm(grads) + 1e-6), max=1.0)
    return grads * coef[:, None]


def clip_by_value(grads: Tensor, clip: float | Tensor) -> Tensor:
    """Clamp every coordinate to ``[−c_k, c_k]``, as ``torch.nn.utils.clip_grad_value_``.

    Args:
        grads: ``[K, d]``.
        clip: ``c``, a float or ``Tensor[K]`` (must be > 0).

    Returns:
        The clipped gradients ``[K, d]`` (a new tensor).
    """
    c = _per_chain(clip, grads)
    return torch.minimum(torch.maximum(grads, -c), c)
