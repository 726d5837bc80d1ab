"""How much memory a run needs, estimated before anything runs, against a limit.

:func:`sgdlab.engine.plan.prepare` refuses a config whose estimate exceeds the limit with a
one-line :class:`~sgdlab.errors.ConfigError` that gives the estimate, its largest part and
the limit — instead of an allocation failure, a machine driven into swap, or a run that
dies after writing a ``running`` row. The estimate is deliberately an upper-side count of
the large buffers (``itemsize`` = 4 for float32, 8 for float64; K chains, d parameters, b
samples per batch, p numbers per sample, n recorded steps, m metrics):

* **building the problem** (before it is built, from its parameters): a component's
  ``Params.estimated_bytes()`` when it has one — the quadratic's d×d matrices, a synthetic
  dataset's N×p draws;
* **the problem's own tensors** (after it is built): their actual sizes;
* **parameters**: K·d·itemsize × 10 — W, the new W, the gradient, up to two optimizer
  buffers (Adam), the averaged iterate, and the temporaries of one update;
* **batches**: the per-chain random blocks of M steps (:func:`sgdlab.sources.draws.block_steps`)
  × 2 — K·b·M int64 indices from a dataset, K·b·p·M numbers from a population stream,
  nothing under full-batch or in-order sampling — plus one step's gathered batch K·b·p and
  its working set K·b·(h + c + 2)·itemsize × 4 (the hidden activations h of an MLP, the c
  outputs, their gradients, per-sample losses);
* **recorded metrics**: K·n·m values, 8 bytes each in memory and 48 more while the store
  writes them (measured: 56 bytes per value at the peak of a 24.6M-value commit).

The limit is ``$SGDLAB_MEMORY_LIMIT`` (bytes, or with a unit: ``512MiB``, ``8GB``) when set,
else 80% of this machine's physical memory; on a GPU the parameters and batches must also
fit in 90% of the device's memory.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sgdlab.errors import ConfigError
from sgdlab.rng import as_generator
from sgdlab.sources.draws import block_steps

if TYPE_CHECKING:
    from sgdlab.config import RunConfig
    from sgdlab.problems import Problem

__all__ = ["MemoryEstimate", "check_build", "check_run", "format_bytes", "memory_limit"]

#: bytes per recorded value while the store writes it, besides its 8 bytes in memory (one
#: metric's numeric frame at a time and DuckDB's buffers: 56 bytes per value in all at the
#: measured peak of a 24.6M-value commit)
STORED_VALUE_BYTES = 48

_UNITS = {
    "": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def format_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``; beyond PiB in powers of ten (``'1.2e+06 PiB'``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB" if n < 1024 else f"{n:.1e} PiB"


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (``None`` where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit() -> tuple[int | None, str]:
    """``(bytes, where it comes from)``: ``$SGDLAB_MEMORY_LIMIT``, else 80% of physical
    memory (``None`` when neither is known: no check)."""
    env = os.environ.get("SGDLAB_MEMORY_LIMIT", "").strip()
    if env:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", env)
        if m is None or m.group(2).lower() not in _UNITS:
            raise ConfigError(
                "SGDLAB_MEMORY_LIMIT", f"expected bytes such as 8GiB or 500000000, got {env[:40]!r}"
            )
        return int(float(m.group(1)) * _UNITS[m.group(2).lower()]), "SGDLAB_MEMORY_LIMIT"
    total = physical_memory()
    if total is None:
        return None, "unknown"
    return int(0.8 * total), "80% of this machine's memory; SGDLAB_MEMORY_LIMIT changes it"


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes of a run's large buffers (module docstring), by part."""

    problem: int
    parameters: int
    batches: int
    records: int

    @property
    def total(self) -> int:
        return self.problem + self.parameters + self.batches + self.records

    @property
    def device_part(self) -> int:
        """What lives on the run's device (the rest is host memory)."""
        return self.problem + self.parameters + self.batches

    def largest(self) -> tuple[str, str]:
        """``(part, the config field to change)`` of the largest part."""
        parts = {
            "the problem's data": (self.problem, "problem"),
            "the parameters of all chains": (self.parameters, "chains"),
            "the minibatches of all chains": (self.batches, "batch.size"),
            "the recorded metrics": (self.records, "record.every"),
        }
        name = max(parts, key=lambda k: parts[k][0])
        return name, parts[name][1]


def _refuse(need: int, limit: int, origin: str, field: str, what: str) -> ConfigError:
    return ConfigError(
        field,
        f"this run needs about {format_bytes(need)} of memory ({what}), more than the limit of "
        f"{format_bytes(limit)} ({origin}): use fewer chains, a smaller batch or problem, or "
        "record less often",
    )


def check_build(params: Any, itemsize: int) -> None:
    """Refuse, before it is built, a problem whose own construction cannot fit (its
    ``Params.estimated_bytes(itemsize)``, when the component declares one)."""
    estimate = getattr(params, "estimated_bytes", None)
    if estimate is None:
        return
    need = int(estimate(itemsize))
    limit, origin = memory_limit()
    if limit is not None and need > limit:
        raise _refuse(need, limit, origin, "problem", "building the problem")


def _tensor_bytes(obj: Any) -> int:
    return sum(
        v.numel() * v.element_size() for v in vars(obj).values() if isinstance(v, torch.Tensor)
    )


def _sample_numel(problem: Problem) -> int:
    if problem.finite and getattr(problem, "X", None) is not None:
        return max(1, math.prod(problem.X.shape[1:]))
    x, _ = problem.sample(as_generator(0), 1)  # one throwaway sample: its size only
    return max(1, x[0].numel())


def estimate(
    cfg: RunConfig, problem: Problem, mode: str, batch_size: int, n_metrics: int
) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of a config on its built problem (``mode``: the resolved
    sampling mode; ``batch_size``: the effective b, the dataset size under full-batch
    sampling)."""
    itemsize = 8 if cfg.dtype == "float64" else 4
    K, d, b = cfg.chains, problem.dim, batch_size
    p = _sample_numel(problem)
    hidden = sum(getattr(problem.params, "widths", None) or [])  # an MLP's activations
    outputs = int(getattr(problem, "n_classes", 1) or 1)
    draws = "sampling" not in cfg.streams.off
    if mode == "full" or not draws:  # the data themselves (a view), no random blocks
        blocks, gathered = 0, 0
    elif mode == "stream":  # fresh samples, drawn in blocks of M steps
        blocks = K * b * p * block_steps(b * p) * itemsize * 2
        gathered = K * b * p * itemsize
    else:  # indices drawn in blocks, rows gathered each step
        blocks = K * b * block_steps(b) * 8 * 2
        gathered = K * b * p * itemsize
    working = gathered + K * b * (hidden + outputs + 2) * itemsize * 4
    n_records = cfg.steps // cfg.record.every + 2
    return MemoryEstimate(
        problem=_tensor_bytes(problem),
        parameters=K * d * itemsize * 10,
        batches=blocks + working,
        records=K * n_records * n_metrics * (8 + STORED_VALUE_BYTES),
    )


def check_run(est: MemoryEstimate, device: torch.device) -> None:
    """Refuse a run whose estimate exceeds the limit (host, and the GPU's memory on cuda)."""
    limit, origin = memory_limit()
    part, field = est.largest()
    if limit is not None and est.total > limit:
        raise _refuse(est.total, limit, origin, field, f"mostly {part}")
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        if est.device_part > 0.9 * total:
            raise _refuse(
                est.device_part, int(0.9 * total), f"90% of {device}'s memory", field,
                f"on the GPU, mostly {part}",
            )  # fmt: skip
