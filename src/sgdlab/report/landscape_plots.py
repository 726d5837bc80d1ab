"""Figures of loss-landscape slices and Hessian spectral densities (matplotlib, Agg backend).

Each helper draws one figure, marks the starting point (α = 0, or (0, 0) on a plane; both
end points of an interpolation), writes it as PNG and SVG when given a path stem, closes it
and returns the paths written.

Example:
    >>> from sgdlab.measure.curvature.landscape import LossLine
    >>> line = LossLine(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5) ** 2)
    >>> paths = plot_loss_line(line, "/tmp/line")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sgdlab.measure.curvature.landscape import LossLine, LossSurface
from sgdlab.measure.curvature.spectrum import SpectralDensity

FORMATS = ("png", "svg")


def _save(fig: Figure, path: str | Path | None, formats: Sequence[str]) -> list[Path]:
    """Write ``fig`` as ``path.<fmt>`` for each format (``path`` is a stem; a suffix is
    replaced), then close it."""
    written: list[Path] = []
    if path is not None:
        stem = Path(path)
        stem.parent.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            target = stem.with_suffix(f".{fmt}")
            fig.savefig(target)
            written.append(target)
    plt.close(fig)
    return written


def plot_loss_line(
    line: LossLine,
    path: str | Path | None = None,
    *,
    log: bool = False,
    title: str = "",
    xlabel: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Loss (and accuracy, on a twin axis, if present) against α, with the marked points."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    ax.plot(line.alphas, line.losses, color="C0", lw=1.8, label="loss")
    for i, (name, alpha) in enumerate(line.marks.items()):
        loss_at = float(np.interp(alpha, line.alphas, line.losses))
        ax.axvline(alpha, color="0.6", ls="--", lw=0.8)
        ax.plot([alpha], [loss_at], marker="*", ms=12, color=f"C{3 + i}", ls="none", label=name)
    if log and np.all(line.losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or ("α (interpolation)" if line.kind == "interpolation" else "α"))
    ax.set_ylabel("loss")
    if line.accuracies is not None:
        ax2 = ax.twinx()
        ax2.plot(line.alphas, line.accuracies, color="C1", lw=1.2, ls=":", label="accuracy")
        ax2.set_ylabel("accuracy")
    ax.set_title(title or f"loss along a {line.kind} direction", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path, formats)


def plot_loss_surface(
    surface: LossSurface,
    path: str | Path | None = None,
    *,
    levels: int = 30,
    log: bool = False,
    title: str = "",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Filled contour plot of the loss over (α, β) with the start (0, 0) marked."""
    z = surface.losses
    if log and np.all(z > 0):
        z, label = np.log10(z), "log10 loss"
    else:
        label = "loss"
    fig, ax = plt.subplots(figsize=(5.6, 4.6), dpi=120)
    A, B = np.meshgrid(surface.alphas, surface.betas, indexing="ij")
    filled = ax.contourf(A, B, z, levels=levels, cmap="viridis")
    ax.contour(A, B, z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(filled, ax=ax, label=label)
    ax.plot([0.0], [0.0], marker="*", ms=14, color="red", ls="none", label="w0")
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    ax.set_title(title or f"loss on a {surface.kind} plane", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    fig.tight_layout()
    return _save(fig, path, formats)


def plot_spectral_density(
    sd: SpectralDensity,
    path: str | Path | None = None,
    *,
    log: bool = True,
    title: str = "",
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """The SLQ density φ_σ(t) (log scale by default, as in Ghorbani et al. 2019)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    dens = np.maximum(sd.density, 1e-12) if log else sd.density
    ax.plot(sd.grid, dens, color="C0", lw=1.5)
    if log:
        ax.set_yscale("log")
    ax.axvline(0.0, color="0.6", ls="--", lw=0.8)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(
        title or f"Hessian spectral density (SLQ, {sd.nodes.shape[0]} runs, σ={sd.sigma:.2g})",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, formats)
