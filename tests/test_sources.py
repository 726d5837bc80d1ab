"""Noise sources at engine level: turning one off or re-seeding it leaves every other
source's draws unchanged, on the MLP with dropout and label noise (where every source is
drawn, so this is not true by construction), and changes the trajectory only where the
maths says it must.

Covers: ``sgdlab.sources`` (base, registry, init, data, dropout, inject, sampling, steps,
draws) and the ``streams`` checks of ``sgdlab.engine.plan``.
"""

from __future__ import annotations

import pytest
import torch

import sgdlab
from sgdlab.engine import prepare
from sgdlab.errors import ConfigError
from sgdlab.sources import SOURCES, Place, initial_params

MLP = {"name": "mlp", "dataset": "synthetic", "n_samples": 120, "n_features": 6,
       "n_classes": 3, "widths": [8, 8], "dropout": 0.3, "label_noise": 0.25}  # fmt: skip


def cfg(**over):
    base = {"problem": MLP, "optimizer": {"name": "sgd", "lr": 0.1}, "chains": 3, "steps": 12,
            "batch": {"size": 5, "sampling": "without_replacement"}, "seed": 4,
            "dtype": "float64", "record": {"every": 4}}  # fmt: skip
    return {**base, **over}


def draws(config, steps: int = 6) -> dict[str, torch.Tensor]:
    """What each source drew: initial points, labels, batches (features) and dropout masks."""
    plan = prepare(config)
    batches, masks = [], []
    for _ in range(steps):
        x, _ = plan.sampler.next()
        loss, _ = plan.step_draws.next()
        batches.append(x.clone())
        masks.append(torch.cat([v.reshape(v.shape[0], -1) for v in (loss or {}).values()], 1)
                     if loss else torch.zeros(0))  # fmt: skip
    return {
        "data": plan.problem.X.clone(),
        "label_noise": plan.problem.y.clone(),
        "init": initial_params(plan.problem, plan.streams, plan.chain_ids),
        "sampling": torch.stack(batches),
        "dropout": torch.stack(masks),
    }


BASE = draws(cfg())
STREAMS = ("data", "label_noise", "init", "sampling", "dropout")


@pytest.mark.parametrize(
    ("stream", "how"),
    [(s, "reseed") for s in STREAMS] + [(s, "off") for s in STREAMS if s != "data"],
)
def test_one_source_changes_only_its_own_draws(stream, how):
    streams = {"off": [stream]} if how == "off" else {"seeds": {stream: 77}}
    got = draws(cfg(streams=streams))
    for other in STREAMS:
        same = torch.equal(got[other], BASE[other])
        if other == stream:
            assert not same, f"{how} {stream}: its own draws did not change"
        elif stream == "data" and other in ("label_noise", "sampling"):
            continue  # new data: the labels and the features of a batch are other data
        else:
            assert same, f"{how} {stream} changed the draws of {other}"


def test_off_sources_are_deterministic_and_re_seeding_changes_them():
    off = draws(cfg(streams={"off": ["init", "sampling", "dropout", "label_noise"]}))
    assert torch.equal(off["init"][0], off["init"][1])  # one fixed point for every chain
    assert torch.equal(off["sampling"][:, 0], off["sampling"][:, 1])  # in-order batches
    assert off["dropout"].numel() == 0  # no masks drawn


def test_two_dropout_layers_never_share_a_mask():
    plan = prepare(cfg())
    loss, _ = plan.step_draws.next()
    assert set(loss) == {"dropout_l1", "dropout_l2"}
    assert loss["dropout_l1"].shape == loss["dropout_l2"].shape  # same widths
    assert not torch.equal(loss["dropout_l1"], loss["dropout_l2"])


def _final(config) -> torch.Tensor:
    return sgdlab.run(config).final_params


def test_trajectories_where_the_maths_says_they_are_equal():
    # dropout off is the network without dropout, every other draw the same
    no_dropout = {**MLP, "dropout": 0.0}
    assert torch.equal(_final(cfg(streams={"off": ["dropout"]})),
                       _final(cfg(problem=no_dropout)))  # fmt: skip
    # label noise off is the clean dataset
    clean = {**MLP, "label_noise": 0.0}
    assert torch.equal(_final(cfg(streams={"off": ["label_noise"]})), _final(cfg(problem=clean)))
    # SGLD with its injected noise off is SGD
    sgld = {"name": "sgld", "lr": 0.1, "temperature": 0.5}
    assert torch.equal(_final(cfg(optimizer=sgld, streams={"off": ["inject"]})), _final(cfg()))
    # re-seeding dropout changes the trajectory (it is drawn), not the batches
    assert not torch.equal(_final(cfg(streams={"seeds": {"dropout": 5}})), _final(cfg()))


def test_inject_draws_are_independent_of_the_other_sources():
    sgld = {"name": "sgld", "lr": 0.1, "temperature": 0.5}

    def injected(streams):
        plan = prepare(cfg(optimizer=sgld, streams=streams))
        return torch.stack([plan.step_draws.next()[1]["inject"] for _ in range(4)])

    base = injected({})
    assert torch.equal(base, injected({"off": ["dropout", "sampling"]}))
    assert not torch.equal(base, injected({"seeds": {"inject": 1}}))


@pytest.mark.parametrize(
    ("streams", "config", "match"),
    [
        ({"off": ["dropout"]}, {"problem": {**MLP, "dropout": 0.0}}, "never drawn"),
        ({"off": ["inject"]}, {}, "never drawn"),
        ({"off": ["label_noise"]}, {"problem": {**MLP, "label_noise": 0.0}}, "never drawn"),
        ({"off": ["augment"]}, {}, "reserved"),
        ({"off": ["probe"]}, {}, "instruments"),
        ({"off": ["data"]}, {}, "cannot be turned off"),
        ({"off": ["sampling"]}, {"batch": {"sampling": "full", "size": None}}, "never drawn"),
    ],
)
def test_off_refuses_a_stream_the_run_never_draws(streams, config, match):
    with pytest.raises(ConfigError, match=match) as err:
        prepare(cfg(streams=streams, **config))
    assert err.value.field == "streams.off"
    assert "sources this run draws" in err.value.message


def test_every_source_names_its_stream_place_and_meaning():
    assert set(SOURCES) == {"data", "label_noise", "init", "sampling", "dropout", "inject"}
    for name, source in SOURCES.items():
        assert source.stream == name and isinstance(source.place, Place) and source.summary
    assert not SOURCES["data"].off and SOURCES["dropout"].off
