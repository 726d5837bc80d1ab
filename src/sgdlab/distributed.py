"""Data-parallel awareness for the instrument: unwrap a user's model, detect DDP, and read each
rank's local gradient norm before the all-reduce — with no extra pass and no extra collective.

Under ``DistributedDataParallel`` with W ranks, each of local batch b, rank r's backward
computes its local gradient G_r (batch b); the all-reduce replaces it by the global mean
G = (1/W) Σ_r G_r (batch W·b). E|G_r|² = |∇F|² + tr Σ/b and E|G|² = |∇F|² + tr Σ/(W b), so
the pair (|G_r|², |G|²) is exactly McCandlish et al.'s two-batch estimator (2018, "An
Empirical Model of Large-Batch Training", appendix A.1) with B_small = b, B_big = W·b.
:class:`LocalNormHook` reads both from a DDP communication hook (as k-diffusion's
``DDPGradientStatsHook`` does): the squared norm of each gradient bucket before and after its
all-reduce. The hook performs exactly the collectives of DDP's default hook (one all-reduce
per bucket, pre-divided by W, so the reduced gradients are bit-identical), so registering it
on some ranks only cannot deadlock.

The instrument's own extra passes run on :func:`unwrap`\\ (model) — the module under DDP's
wrapper — so they never trigger DDP's buffer broadcast or gradient reduction (collectives
that would wait forever for ranks that do not measure).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DataParallelInfo", "LocalNormHook", "data_parallel", "rank", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The module holding the parameters under the wrappers a training script adds:
    ``DistributedDataParallel`` / ``DataParallel`` (``.module``) and ``torch.compile``
    (``._orig_mod``), repeatedly. Parameter names are then the user's own (no ``module.`` or
    ``_orig_mod.`` prefix)."""
    seen = 0
    while seen < 8:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model
        seen += 1
    return model


def rank() -> int:
    """This process's rank (0 without an initialized process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@dataclass(frozen=True)
class DataParallelInfo:
    """A model trained by DDP: ``world_size`` ranks, this one ``rank``; ``ddp`` the wrapper."""

    world_size: int
    rank: int
    ddp: nn.parallel.DistributedDataParallel


def data_parallel(model: nn.Module) -> DataParallelInfo | None:
    """The DDP context of ``model`` (``None`` unless it is, possibly under ``torch.compile``, a
    ``DistributedDataParallel`` with an initialized process group of ≥ 2 ranks)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            break
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return None
        model = inner
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size(model.process_group)
    if world < 2:
        return None
    return DataParallelInfo(world, dist.get_rank(model.process_group), model)


def _norm_sq(t: torch.Tensor) -> torch.Tensor:
    """|t|² accumulated in float64 (no float64 copy of the bucket), left on its device."""
    return torch.linalg.vector_norm(t.detach(), dtype=torch.float64) ** 2


class LocalNormHook:
    """A DDP communication hook that records, when armed, |G_r|² (this rank's gradient,
    summed over buckets, before the all-reduce) and |G|² (after it).

    Register it once per DDP model, before its first backward (DDP's rule); ``armed``
    decides whether the next backward's norms are kept (two squared sums per bucket; nothing
    is synchronized with the host until :meth:`take`).
    """

    def __init__(self, ddp: nn.parallel.DistributedDataParallel) -> None:
        self.group = ddp.process_group
        self.world = dist.get_world_size(self.group)
        self.armed = False
        self._local: list[torch.Tensor] = []
        self._global: list[torch.Tensor] = []
        ddp.register_comm_hook(self, LocalNormHook._hook)

    @staticmethod
    def _hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP checks the annotations
        """Record |bucket|² before and after DDP's default all-reduce (divide by W, sum)."""
        buf = bucket.buffer()
        armed = state.armed
        if armed:
            state._local.append(_norm_sq(buf))
        buf.div_(state.world)  # as DDP's default allreduce_hook: divide, then sum
        fut = dist.all_reduce(buf, group=state.group, async_op=True).get_future()

        def done(f: torch.futures.Future) -> torch.Tensor:
            out = f.value()[0]
            if armed:
                state._global.append(_norm_sq(out))
            return out

        return fut.then(done)

    def take(self) -> tuple[float, float] | None:
        """``(|G_r|², |G|²)`` of the last armed backward (``None`` if none ran), and reset."""
        local, glob = self._local, self._global
        self._local, self._global = [], []
        if not local or len(local) != len(glob):
            return None
        return float(torch.stack(local).sum()), float(torch.stack(glob).sum())

    def mean_over_ranks(self, value: float) -> float:
        """The mean of ``value`` over the ranks: one all-reduce, so every rank must call it
        (``Monitor(..., all_ranks=True)`` declares that each rank runs the Monitor)."""
        t = torch.tensor([value], dtype=torch.float64)
        if dist.get_backend(self.group) == "nccl":
            t = t.cuda()
        dist.all_reduce(t, group=self.group)
        return float(t.item()) / self.world
