"""A step's batch from its micro-batches (gradient accumulation in the callbacks): joined
along dimension 0 when they can be, else the last one; their sample count either way."""

from __future__ import annotations

import torch

from sgdlab.integrations._batches import batch_len, join


def test_pairs_and_dicts_are_joined_along_the_batch():
    a = (torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 2]))
    b = (torch.arange(6.0, 10.0).reshape(2, 2), torch.tensor([3, 4]))
    (x, y), joined = join([a, b])
    assert joined and torch.equal(x, torch.arange(10.0).reshape(5, 2))
    assert torch.equal(y, torch.arange(5))
    d1 = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "labels": torch.ones(2, 4)}
    d2 = {"input_ids": torch.ones(3, 4, dtype=torch.long), "labels": torch.zeros(3, 4)}
    batch, joined = join([d1, d2])
    assert joined and batch["input_ids"].shape == (5, 4)
    assert torch.equal(batch["labels"][:2], d1["labels"]) and list(batch) == list(d1)
    assert join([a]) == (a, True)  # one micro-batch: as it is
    assert join([(a[0], None), (b[0], None)])[0][1] is None


def test_what_cannot_be_joined_gives_the_last_micro_batch():
    short = {"input_ids": torch.zeros(2, 4, dtype=torch.long)}
    long = {"input_ids": torch.zeros(2, 7, dtype=torch.long)}  # padded to another length
    other = {"attention_mask": torch.zeros(2, 4)}
    for parts in ([short, long], [short, other]):
        batch, joined = join(parts)
        assert batch is parts[-1] and not joined
    pair, triple = (torch.zeros(2),), (torch.zeros(2), torch.zeros(2))
    assert join([pair, triple]) == (triple, False)

def test_batch_len():
    assert batch_len(torch.zeros(5, 3)) == 5
    assert batch_len((torch.zeros(4, 2), torch.zeros(4))) == 4
    assert batch_len({"n": torch.tensor(3), "input_ids": torch.zeros(6, 8)}) == 6
