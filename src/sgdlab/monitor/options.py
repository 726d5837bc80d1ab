"""The Monitor's arguments: their checks (one ``ValueError`` naming the argument) and the
default noise cadence."""

from __future__ import annotations

METHODS = ("auto", "fast", "vmap", "loop")

#: the default noise cadence: at most every AUTO_NOISE_EVERY steps, and rarer when the
#: measurements would otherwise take more than NOISE_BUDGET of the training loop's time
AUTO_NOISE_EVERY = 100
NOISE_BUDGET = 0.02


def check_options(
    every: int, noise_every: int | str, flush_every: float, noise_mode: str, method: str,
    accumulation_steps: int, chunk_size: int | None,
) -> None:  # fmt: skip
    """Raise ``ValueError`` naming the first argument out of range."""
    if every < 1:
        raise ValueError(f"every must be ≥ 1, got {every}")
    if noise_every != "auto" and (
        isinstance(noise_every, bool) or not isinstance(noise_every, int) or noise_every < 0
    ):
        raise ValueError(f"noise_every must be 'auto' or an integer ≥ 0 (0 = off), got "
                         f"{noise_every!r}")  # fmt: skip
    if not (isinstance(flush_every, int | float) and flush_every > 0):
        raise ValueError(f"flush_every must be seconds > 0, got {flush_every!r}")
    if noise_mode not in ("auto", "eval", "train"):
        raise ValueError(f"noise_mode must be 'auto', 'eval' or 'train', got {noise_mode!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(accumulation_steps, bool) or not (
        isinstance(accumulation_steps, int) and accumulation_steps >= 1
    ):
        raise ValueError(f"accumulation_steps must be an integer ≥ 1, got {accumulation_steps!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
            chunk_size, int) or chunk_size < 1):  # fmt: skip
        raise ValueError(f"chunk_size must be an integer ≥ 1 or None, got {chunk_size!r}")
