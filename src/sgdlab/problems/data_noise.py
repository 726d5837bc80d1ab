"""Label noise and data augmentation of the classification problems (the article's §2 list).

Every function here is pure given its random draws; the draws come from the named streams
(``label_noise``, ``augment``) through :mod:`sgdlab.sources`.

**Label noise** with flip probability q on C classes: a label is replaced, with probability
q, by a class drawn uniformly on the C classes (so it stays correct with probability
1 − q + q/C and changes with probability q(1 − 1/C)).

* *static* (:func:`flip_labels`): once, when the data are built — every epoch sees the same
  wrong labels (the classical noisy-label setting);
* *dynamic* (:func:`redraw_labels`): afresh every time a sample is drawn — a sample's label
  is a random variable with E[one-hot] = (1 − q)e_y + q/C·1, so the expected loss is the
  loss of the clean data smoothed by q (cross-entropy is linear in the target): dynamic
  label noise is *label smoothing in expectation* plus zero-mean gradient noise.

**Augmentation** of an image sample x (raw pixels, H × W) per drawn sample, per chain, in this
order (:func:`augment_images`):

* a random shift (dy, dx), each uniform on {−s, …, s} (``augment_shift`` s), with zero
  (blank) padding: the crop of the zero-padded image — E[dy] = 0, Var[dy] = s(s + 1)/3;
* a horizontal flip with probability ½ (``augment_flip``; meaningful for images whose class
  is mirror-invariant — not for digits, where it is a source of label noise in disguise);
* additive Gaussian pixel noise of standard deviation σ (``augment_noise``, raw pixel units).

The problem's features are standardised ((x − mean)/std per pixel), so augmentation is done
in raw pixel units: x_raw = x·std + mean, augment, standardise back (a blank pixel is raw 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["augment_images", "flip_labels", "redraw_labels", "shift_values"]

#: labels flipped per block by :func:`flip_labels` (part of the draw order: never change)
FLIP_BLOCK = 1 << 16


def flip_labels(y: Tensor, n_classes: int, q: float, generator: torch.Generator) -> Tensor:
    """Static label noise: each label replaced with probability ``q`` by a uniform class.

    Draw order from ``generator`` (the ``label_noise`` stream), per block of 65536 labels:
    the flip uniforms (float64), then the replacement classes.
    """
    out = y.clone()
    if q == 0:
        return out
    for start in range(0, y.shape[0], FLIP_BLOCK):
        m = min(FLIP_BLOCK, y.shape[0] - start)
        flip = torch.rand(m, generator=generator, dtype=torch.float64) < q
        repl = torch.randint(0, n_classes, (m,), generator=generator)
        out[start : start + m] = torch.where(flip, repl, y[start : start + m])
    return out


def redraw_labels(y: Tensor, n_classes: int, q: float, u_flip: Tensor, u_class: Tensor) -> Tensor:
    """Dynamic label noise: ``y [K, b]`` with each label replaced when ``u_flip < q`` by the
    class ⌊u_class·C⌋ (``u_flip``, ``u_class`` ~ U[0, 1), ``[K, b]``)."""
    cls = (u_class.to(torch.float64) * n_classes).long().clamp_(max=n_classes - 1)
    return torch.where(u_flip.to(y.device) < q, cls.to(y.device), y.long())


def shift_values(u: Tensor, s: int) -> Tensor:
    """Integer shifts uniform on {−s, …, s} from uniforms ``u`` on [0, 1): ⌊u(2s+1)⌋ − s."""
    return (u.to(torch.float64) * (2 * s + 1)).long().clamp_(max=2 * s) - s


def augment_images(
    x: Tensor,
    shape: tuple[int, int],
    *,
    shift: int = 0,
    flip: bool = False,
    noise_std: float = 0.0,
    u_shift: Tensor | None = None,
    u_flip: Tensor | None = None,
    z_noise: Tensor | None = None,
    mean: Tensor | None = None,
    std: Tensor | None = None,
) -> Tensor:
    """Augment flattened images ``x [K, b, H·W]`` (standardised with ``mean``/``std``, or raw
    when they are ``None``) — see the module docstring. ``u_shift [K, b, 2]`` (dy, dx) and
    ``u_flip [K, b]`` are uniforms, ``z_noise [K, b, H·W]`` standard normals; a missing draw
    skips its step."""
    H, Wd = shape
    K, b, p = x.shape
    raw = x if mean is None else x * std.to(x) + mean.to(x)  # type: ignore[union-attr]
    img = raw.reshape(K * b, H, Wd)
    if shift > 0 and u_shift is not None:
        d = shift_values(u_shift.reshape(K * b, 2), shift).to(x.device)
        padded = torch.nn.functional.pad(img, (shift, shift, shift, shift))
        # output pixel (i, j) reads input pixel (i − dy, j − dx): the image moves by (dy, dx)
        rows = torch.arange(H, device=x.device) + shift - d[:, :1]
        cols = torch.arange(Wd, device=x.device) + shift - d[:, 1:]
        n = torch.arange(K * b, device=x.device)[:, None, None]
        img = padded[n, rows[:, :, None], cols[:, None, :]]
    if flip and u_flip is not None:
        mirrored = (u_flip.reshape(K * b) < 0.5).to(x.device)[:, None, None]
        img = torch.where(mirrored, img.flip(-1), img)
    out = img.reshape(K, b, p)
    if noise_std > 0 and z_noise is not None:
        out = out + noise_std * z_noise.to(x)
    if mean is not None:
        out = (out - mean.to(x)) / std.to(x)  # type: ignore[union-attr]
    return out
