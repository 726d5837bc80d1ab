"""One rank of the two-process gloo DDP tests (``tests/test_ddp.py``); run as a script:

    python tests/_ddp_worker.py RANK WORLD PORT CASE OUT_DIR STORE

CASE ``transformer``: a small transformer classifier, a Monitor on every rank
(``all_ranks=True``), rank 0 writing the store. CASE ``bn_rank0``: a BatchNorm CNN with a
Monitor on rank 0 only (the case that deadlocked). Each rank first trains without a Monitor,
then the same steps with one (a fresh DDP wrapper of the same initial weights), and writes
``OUT_DIR/rank<r>.pt``: final parameters of both runs, the recorded metrics, the parameters
before every step and the global batches (for the single-process reference).
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import sgdlab

LOCAL_B, STEPS, LR, MOMENTUM = 16, 6, 0.05, 0.9


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(13, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(tokens)).mean(1))


def build(case: str) -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    if case == "transformer":
        return Classifier()
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    )


def global_batch(case: str, t: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + t)
    n = LOCAL_B * world
    if case == "transformer":  # a learnable rule: a clear gradient signal at the start
        x = torch.randint(0, 13, (n, 5), generator=g)
        return x, x[:, 0] % 3
    x = torch.randn(n, 1, 6, 6, generator=g)
    return x, (x[:, 0, :3].mean((1, 2)) > 0).long() + (x[:, 0, 3:].mean((1, 2)) > 0.3).long()


def run(case: str, rank: int, world: int, monitored: bool, store: str | None) -> dict:
    module = build(case)
    ddp = nn.parallel.DistributedDataParallel(module)
    opt = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    use = monitored and (case == "transformer" or rank == 0)
    mon = None
    if use:
        all_ranks = case == "transformer"
        mon = sgdlab.Monitor(
            ddp, loss_fn, opt, store=store, every=1, noise_every=1, all_ranks=all_ranks
        )
    if mon is not None:
        mon.start()
    before, batches = [], []
    for t in range(STEPS):
        gx, gy = global_batch(case, t, world)
        x, y = gx[rank * LOCAL_B : (rank + 1) * LOCAL_B], gy[rank * LOCAL_B : (rank + 1) * LOCAL_B]
        before.append({k: v.detach().clone() for k, v in module.state_dict().items()})
        batches.append((gx, gy))
        loss = loss_fn(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(x, y, loss)
    if mon is not None:
        mon.close()
    return {
        "params": [p.detach().clone() for p in module.parameters()],
        "metrics": None if mon is None else {k: (s, v) for k, (s, v) in mon.metrics.items()},
        "events": None if mon is None else [e.name for e in mon.events],
        "before": before,
        "batches": batches,
        "run_id": None if mon is None else mon.run_id,
    }


def main() -> None:
    rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    case, out, store = sys.argv[4], Path(sys.argv[5]), sys.argv[6]
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    try:
        plain = run(case, rank, world, monitored=False, store=None)
        watched = run(case, rank, world, monitored=True, store=store)
        torch.save({"plain": plain, "watched": watched}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
