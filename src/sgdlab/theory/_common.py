"""Small shared helpers of :mod:`sgdlab.theory` (argument coercion, sampling factor)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def finite_population_factor(b: int, n: int | None) -> float:
    """Variance factor of a minibatch mean drawn *without* replacement from N items.

    For a mean of ``b`` per-sample gradients drawn without replacement from a finite
    population of ``N`` whose per-sample covariance (1/N normalisation) is Σ, the covariance
    of the minibatch mean is Σ/b · (N − b)/(N − 1) (the finite-population correction of
    survey sampling). With replacement, or an infinite population (``n=None``), the factor
    is 1.

    Args:
        b: batch size, 1 ≤ b (≤ N when ``n`` is given).
        n: population size N, or ``None`` for sampling with replacement / a population.

    Returns:
        (N − b)/(N − 1), or 1.0 when ``n`` is ``None``.

    Example:
        >>> finite_population_factor(10, 100)
        0.9090909090909091
    """
    if b < 1:
        raise ValueError(f"batch size b must be ≥ 1, got {b}")
    if n is None:
        return 1.0
    if n < 2 or b > n:
        raise ValueError(f"need 2 ≤ N and b ≤ N, got N={n}, b={b}")
    return (n - b) / (n - 1)


def population_noise_traces(trace_sample: Any, b: int, n: int | None) -> tuple[Any, Any]:
    """``(tr Σ, tr Var ḡ)`` from tr Σ̂, the unbiased (1/(b−1)) trace of b per-sample gradients.

    With independent draws (``n=None``): tr Σ = tr Σ̂ and tr Var ḡ = tr Σ̂/b. When the b
    samples are distinct members of a dataset of N (without replacement), tr Σ̂ estimates the
    1/(N−1) covariance, so tr Σ = tr Σ̂ (N−1)/N for the 1/N covariance and
    tr Var ḡ = tr Σ/b · (N−b)/(N−1) (:func:`finite_population_factor`), zero at b = N.
    Works elementwise on floats, arrays and tensors.

    Example:
        >>> population_noise_traces(4.0, 2, None)
        (4.0, 2.0)
    """
    trace_sigma = trace_sample if n is None else trace_sample * (n - 1) / n
    return trace_sigma, trace_sigma / b * finite_population_factor(b, n)


def as_matrix(x: ArrayLike, d: int | None = None) -> FloatArray:
    """A float64 square matrix; a scalar or 1-D input becomes a (diagonal) matrix."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        if d is None:
            return a.reshape(1, 1)
        return float(a) * np.eye(d)
    if a.ndim == 1:
        return np.diag(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    return a


def as_vector(x: ArrayLike, d: int | None = None) -> FloatArray:
    """A float64 1-D array; a scalar broadcasts to length ``d`` when given."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return np.full(1 if d is None else d, float(a))
    if a.ndim != 1:
        raise ValueError(f"expected a vector, got shape {a.shape}")
    if d is not None and a.shape[0] != d:
        raise ValueError(f"expected length {d}, got {a.shape[0]}")
    return a
