"""The training configuration: defaults, partial files, and refusal of impossible values."""

from __future__ import annotations

import json

import pytest

from cnn_core.augment import Augmentation
from cnn_core.config import TrainConfig, config_from_dict, effective_batch_size, load_config
from cnn_core.errors import ConfigError
from cnn_core.presets import list_presets


def test_defaults_are_the_tutorials():
    config = TrainConfig()
    assert (config.optimizer, config.learning_rate, config.batch_size) == ("adam", 0.001, 64)
    assert (config.epochs, config.validation_split, config.lr_schedule) == (15, 0.2, "constant")
    assert config.augmentation == Augmentation()


def test_a_file_may_give_any_subset_and_round_trips(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 3, "augmentation": {"flip": True}}))
    config = load_config(path)
    assert config.epochs == 3 and config.augmentation.flip and config.batch_size == 64
    assert config_from_dict(json.loads(config.to_json())) == config


def test_every_preset_config_is_valid():
    for preset in list_presets():
        config_from_dict(preset.config, source=preset.id)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"learning_rte": 0.1}, 'unknown key "learning_rte"; did you mean "learning_rate"?'),
        ({"learning_rate": 0}, "learning_rate must be a number greater than 0"),
        ({"learning_rate": -1}, "greater than 0"),
        ({"learning_rate": "fast"}, "greater than 0"),
        ({"epochs": 0}, "epochs must be a whole number from 1"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"batch_size": 0}, "batch_size must be a whole number from 1"),
        ({"validation_split": 0.95}, r"validation_split must be a number in \[0, 0.9\]"),
        ({"optimizer": "adamax"}, 'optimizer must be one of "adam", "adamw", "sgd", "rmsprop"'),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
        ({"label_smoothing": 0.5}, "label_smoothing must be a number in"),
        ({"mixed_precision": "yes"}, 'mixed_precision must be one of "auto", true, false; got "yes"'),
        ({"mixed_precision": 1}, "mixed_precision must be one of"),  # 1 is not true
        ({"augmentation": {"rotate": 0.1}}, 'unknown key "rotate"'),
        ({"augmentation": [True]}, "must be an object"),
        ({"seed": -1}, "seed must be a whole number"),
        ({"limit": 0}, "limit must be a whole number"),
        ({"early_stopping_patience": True}, "early_stopping_patience must be"),
        ({"steps_per_execution": 10**20}, "steps_per_execution must be"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_impossible_values_are_refused_with_the_key_named(data, words):
    with pytest.raises(ConfigError, match=words):
        config_from_dict(data)


def test_not_json_nan_and_missing_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"learning_rate": NaN}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json")


def test_batch_size_larger_than_the_data_is_clamped_with_a_warning():
    assert effective_batch_size(TrainConfig(batch_size=64), 1000) == (64, None)
    size, warning = effective_batch_size(TrainConfig(batch_size=512), 100)
    assert size == 100
    assert "larger than the 100 training images; using 100" in warning


def test_with_changes_validates_overrides():
    assert TrainConfig().with_changes(epochs=3, limit=None).epochs == 3
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig().with_changes(epochs=0)


def test_class_weight_is_balanced_or_null():
    assert config_from_dict({"class_weight": "balanced"}).class_weight == "balanced"
    assert config_from_dict({"class_weight": None}).class_weight is None
    assert TrainConfig().class_weight is None
    with pytest.raises(ConfigError, match='class_weight must be one of "balanced", null'):
        config_from_dict({"class_weight": "auto"})
