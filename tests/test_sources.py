"""Noise sources at engine level: turning one off or re-seeding it leaves every other
source's draws unchanged, on the digits MLP with dropout, static or dynamic label noise,
augmentation and stochastic rounding of the gradient (where every source is drawn, so this
is not true by construction), and changes the trajectory only where the maths says it must.
Every stream of ``rng.STREAM_IDS`` but ``probe`` is drawn by a source.

Covers: ``sgdlab.sources`` (base, registry, init, data, dropout, augment, quantize, inject,
sampling, steps, draws) and the ``streams`` checks of ``sgdlab.engine.plan``.
"""

from __future__ import annotations

import pytest
import torch

import sgdlab
from sgdlab.engine import prepare
from sgdlab.errors import ConfigError
from sgdlab.rng import STREAM_NAMES
from sgdlab.sources import SOURCES, Place, initial_params

MLP = {"name": "mlp", "dataset": "synthetic", "n_samples": 120, "n_features": 6,
       "n_classes": 3, "widths": [8, 8], "dropout": 0.3, "label_noise": 0.25}  # fmt: skip
#: digits images (augmentation needs them), every source of a run drawn
DIGITS = {"name": "mlp", "dataset": "digits", "subsample": 150, "widths": [8],
          "dropout": 0.3, "input_dropout": 0.1, "label_noise": 0.25, "augment_shift": 1,
          "augment_noise": 0.5}  # fmt: skip
QUANT = {"mode": "stochastic", "bits": 4}


def cfg(**over):
    base = {"problem": MLP, "optimizer": {"name": "sgd", "lr": 0.1}, "chains": 3, "steps": 12,
            "batch": {"size": 5, "sampling": "without_replacement"}, "seed": 4,
            "dtype": "float64", "record": {"every": 4}}  # fmt: skip
    return {**base, **over}


def full(mode: str = "static", **over):
    """The digits MLP with every source: static or dynamic label noise."""
    return cfg(problem={**DIGITS, "label_noise_mode": mode}, quantize=QUANT, **over)


def _flat(d: dict | None, keys) -> torch.Tensor:
    parts = [d[k].reshape(d[k].shape[0], -1) for k in keys if d and k in d]
    return torch.cat(parts, 1) if parts else torch.zeros(0)


def draws(config, steps: int = 6) -> dict[str, torch.Tensor]:
    """What each source drew: data, labels, initial points, batches (features), the per-step
    draws of dropout, augmentation, dynamic labels and stochastic rounding."""
    plan = prepare(config)
    batches, per_step = [], {"dropout": [], "augment": [], "label_step": [], "quantize": []}
    for _ in range(steps):
        x, _ = plan.sampler.next()
        loss, update = plan.step_draws.next()
        batches.append(x.clone())
        keys = list(loss or {})
        per_step["dropout"].append(_flat(loss, [k for k in keys if k.startswith("dropout")]))
        per_step["augment"].append(_flat(loss, [k for k in keys if k.startswith("augment")]))
        per_step["label_step"].append(_flat(loss, ["label_flip", "label_class"]))
        per_step["quantize"].append(_flat(update, ["quantize"]))
    out = {
        "data": plan.problem.X.clone(),
        "label_noise": plan.problem.y.clone(),
        "init": initial_params(plan.problem, plan.streams, plan.chain_ids),
        "sampling": torch.stack(batches),
    }
    out.update({k: torch.stack(v) for k, v in per_step.items()})
    step_labels = out.pop("label_step")
    if plan.problem.params.label_noise_mode == "dynamic":  # the stream's draws are per step
        out["label_noise"] = step_labels
    return out


BASE = {"static": draws(full("static")), "dynamic": draws(full("dynamic"))}
STREAMS = ("data", "label_noise", "init", "sampling", "dropout", "augment", "quantize")


@pytest.mark.parametrize("mode", ["static", "dynamic"])
@pytest.mark.parametrize(
    ("stream", "how"),
    [(s, "reseed") for s in STREAMS] + [(s, "off") for s in STREAMS if s != "data"],
)
def test_one_source_changes_only_its_own_draws(stream, how, mode):
    streams = {"off": [stream]} if how == "off" else {"seeds": {stream: 77}}
    got = draws(full(mode, streams=streams))
    base = BASE[mode]
    for other in STREAMS:
        same = got[other].shape == base[other].shape and torch.equal(got[other], base[other])
        if other == stream:
            assert not same, f"{how} {stream}: its own draws did not change"
        elif stream == "data" and other == "sampling":
            continue  # new data: the features of a batch are other data
        elif stream == "data" and other == "label_noise" and mode == "static":
            continue  # the digits are the same, but the subsample is another one
        else:
            assert same, f"{how} {stream} changed the draws of {other}"


def test_every_stream_but_probe_is_drawn_by_a_source():
    assert set(SOURCES) == set(STREAM_NAMES) - {"probe"}
    plan = prepare(full("dynamic", optimizer={"name": "sgld", "lr": 0.1, "temperature": 0.1}))
    from sgdlab.sources import RunSetup, active_sources

    setup = RunSetup(plan.problem, plan.optimizer.rule, "without_replacement", 5)
    assert {s.stream for s in active_sources(setup)} == set(STREAM_NAMES) - {"probe"}


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


def test_new_sources_off_are_their_deterministic_counterparts():
    digits = {**DIGITS, "label_noise": 0.0, "dropout": 0.0, "input_dropout": 0.0}
    plain = {**digits, "augment_shift": 0, "augment_noise": 0.0}
    # augmentation off is the clean images
    assert torch.equal(_final(cfg(problem=digits, streams={"off": ["augment"]})),
                       _final(cfg(problem=plain)))  # fmt: skip
    # dynamic label noise off is the clean labels
    dyn = {**plain, "label_noise": 0.3, "label_noise_mode": "dynamic"}
    assert torch.equal(_final(cfg(problem=dyn, streams={"off": ["label_noise"]})),
                       _final(cfg(problem=plain)))  # fmt: skip
    # stochastic rounding off (u = 1/2) is rounding to the nearest level
    assert torch.equal(_final(cfg(problem=plain, quantize=QUANT, streams={"off": ["quantize"]})),
                       _final(cfg(problem=plain, quantize={"mode": "nearest", "bits": 4})))
    # each of them drawn changes the trajectory
    for config in (cfg(problem=digits), cfg(problem=dyn), cfg(problem=plain, quantize=QUANT)):
        assert not torch.equal(_final(config), _final(cfg(problem=plain)))


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
        ({"off": ["augment"]}, {}, "never drawn"),
        ({"off": ["quantize"]}, {"quantize": {"mode": "nearest"}}, "never drawn"),
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
    assert set(SOURCES) == {"data", "label_noise", "init", "sampling", "dropout", "inject",
                            "augment", "quantize"}  # fmt: skip
    for name, source in SOURCES.items():
        assert source.stream == name and isinstance(source.place, Place) and source.summary
    assert not SOURCES["data"].off and SOURCES["dropout"].off
