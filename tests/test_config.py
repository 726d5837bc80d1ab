"""Config validation: defaults, hashing, errors naming the field."""

from pathlib import Path

import pytest
import yaml

from sgdlab.config import load_config
from sgdlab.defaults import QUICKSTART
from sgdlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def base(**over):
    cfg = {"problem": {"name": "quadratic", "dim": 3}, "optimizer": {"name": "sgd", "lr": 0.1}}
    cfg.update(over)
    return cfg


def test_quickstart_file_equals_builtin_default():
    assert yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text()) == QUICKSTART


def test_defaults_and_hash_stable():
    a, b = load_config(base()), load_config(base())
    assert a.hash() == b.hash()
    assert a.batch.sampling == "auto"
    assert load_config(base(seed=1)).hash() != a.hash()


def test_name_does_not_change_hash():
    assert load_config(base(name="x")).hash() == load_config(base()).hash()


def test_unknown_top_level_key_suggests():
    with pytest.raises(ConfigError) as e:
        load_config(base(chain=3))
    assert e.value.field == "chain"
    assert "did you mean 'chains'" in e.value.message


def test_unknown_nested_key_suggests():
    with pytest.raises(ConfigError) as e:
        load_config(base(batch={"sise": 3}))
    assert e.value.field == "batch.sise" and "'size'" in e.value.message


def test_bad_values_name_field():
    with pytest.raises(ConfigError) as e:
        load_config(base(chains=0))
    assert e.value.field == "chains"
    with pytest.raises(ConfigError) as e:
        load_config(base(batch={"sampling": "sometimes"}))
    assert e.value.field == "batch.sampling"
    with pytest.raises(ConfigError) as e:
        load_config(base(streams={"off": ["dropotu"]}))
    assert e.value.field == "streams.off"


def test_missing_problem_and_file():
    with pytest.raises(ConfigError, match="problem"):
        load_config({"optimizer": {"name": "sgd"}})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/config.yaml")


def test_string_shorthand_for_named_sections():
    cfg = load_config({"problem": "quadratic", "optimizer": {"name": "sgd", "lr": 1.0}})
    assert cfg.problem.name == "quadratic"


def test_yaml_streams_off_key_is_a_string(tmp_path):
    """YAML 1.1 would read the key ``off`` as the boolean False; configs use YAML 1.2 booleans."""
    path = tmp_path / "c.yaml"
    path.write_text("problem: {name: quadratic}\nstreams: {off: [dropout], seeds: {sampling: 7}}\n"
                    "record: {average: true}\n")
    cfg = load_config(path)
    assert cfg.streams.off == ["dropout"] and cfg.streams.seeds == {"sampling": 7}
    assert cfg.record.average is True


def test_docs_config_example_loads(tmp_path):
    text = (ROOT / "docs" / "config.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "c.yaml"
    path.write_text(block)
    cfg = load_config(path)
    assert cfg.streams.off == ["dropout"] and cfg.chains == 64


def test_error_messages_are_one_clear_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("problem: {name: quadratic\nchains: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "not valid YAML" in e.value.message and "line" in e.value.message
    assert "\n" not in e.value.message
    with pytest.raises(ConfigError) as e:
        load_config({"problem": None})
    assert e.value.field == "problem" and "missing" in e.value.message


def test_hash_fills_component_defaults_and_normalizes():
    bare = load_config(base())
    same = [
        base(schedule={"name": "constant", "warmup": 0}),
        base(optimizer={"name": "sgd", "lr": [0.1], "weight_decay": 0.0}),
        base(problem={"name": "quadratic", "dim": 3, "mu": 0.1}),
    ]
    for cfg in same:
        assert load_config(cfg).hash() == bare.hash(), cfg
    assert load_config(base(optimizer={"name": "sgd", "lr": 1})).hash() == load_config(
        base(optimizer={"name": "sgd", "lr": 1.0})
    ).hash()
    assert load_config(base(problem={"name": "quadratic", "dim": 4})).hash() != bare.hash()


def test_equivalent_configs_share_a_hash():
    h = lambda c: load_config(c).hash()  # noqa: E731
    assert h(base(streams={"off": ["init", "dropout"]})) == h(
        base(streams={"off": ["dropout", "init", "init"]})
    )
    assert h(base(optimizer={"name": "sgd", "lr": [0.1, 0.1]})) == h(base())
    assert h(base(optimizer={"name": "sgd", "lr": [0.1, 0.2]})) != h(base())
    full = {"name": "quadratic", "dim": 3, "n": 40}
    assert h(base(problem=full, batch={"size": 8, "sampling": "full"})) == h(
        base(problem=full, batch={"size": 16, "sampling": "full"})
    )


def test_non_finite_numbers_and_negative_seeds_are_refused():
    for cfg, field in [
        (base(problem={"name": "quadratic", "L": float("inf")}), "problem.L"),
        (base(optimizer={"name": "sgd", "lr": float("nan")}), "optimizer.lr"),
        (base(schedule={"name": "inverse_time", "k": float("inf")}), "schedule.k"),
        (base(streams={"seeds": {"sampling": -1}}), "streams.seeds"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(cfg).canonical()
        assert info.value.field.startswith(field), (info.value.field, field)


def test_hash_follows_the_contents_of_a_data_file(tmp_path):
    import numpy as np

    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(20, 3)), y=rng.integers(0, 2, 20))
    cfg = base(problem={"name": "logistic_regression", "dataset": "npz", "path": str(path)})
    before = load_config(cfg).hash()
    assert load_config(cfg).hash() == before
    np.savez(path, X=rng.normal(size=(20, 5)), y=rng.integers(0, 2, 20))
    assert load_config(cfg).hash() != before


def test_config_error_pickles_with_its_field():
    import pickle

    e = pickle.loads(pickle.dumps(ConfigError("batch.size", "too big")))
    assert (e.field, e.message, str(e)) == ("batch.size", "too big", "batch.size: too big")
