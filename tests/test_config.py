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
    assert a.batch.sampling == "without_replacement"
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
