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
        (
            {"mixed_precision": "yes"},
            'mixed_precision must be one of "auto", true, false; got "yes"',
        ),
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


def test_every_key_is_declared_once_with_its_default():
    from dataclasses import fields

    from cnn_core.config import AUGMENTATION, KINDS, SECTIONS, SETTINGS

    top = [f.name for f in fields(TrainConfig) if f.name != "augmentation"]
    assert [s.name for s in SETTINGS] == top
    assert [s.name for s in AUGMENTATION] == [
        f"augmentation.{f.name}" for f in fields(Augmentation)
    ]
    keys = [s.key for s in (*SETTINGS, *AUGMENTATION)]
    assert len(set(keys)) == len(keys)  # one widget each
    for s in (*SETTINGS, *AUGMENTATION):
        assert s.kind in KINDS and s.section in SECTIONS and s.help and s.label
        name = s.name.removeprefix("augmentation.")
        owner = TrainConfig() if name == s.name else Augmentation()
        assert getattr(owner, name) == s.default  # the dataclass default is the declared one
        if s.kind in ("integer", "number"):
            assert s.low is not None and s.high is not None
        if s.kind == "choice":
            assert s.default in s.choices


def _beyond(s):
    """A value just past the declared high end, and just under the low one."""
    over = s.high if s.high_open else s.high + (1 if s.kind == "integer" else 0.001)
    under = s.low if s.low_open else s.low - (1 if s.kind == "integer" else 0.001)
    return over, under


# What a setting's ends need of the others.
ALONGSIDE = {
    "fine_tune": {"epochs": 10_000},
    "devices": {"batch_size": 4096},
}


def test_each_declared_bound_is_the_one_validation_enforces():
    from cnn_core.config import SETTINGS

    for s in SETTINGS:
        if s.kind not in ("integer", "number"):
            continue
        for end, is_open in ((s.low, s.low_open), (s.high, s.high_open)):
            if not is_open:  # a closed end is allowed
                given = {s.name: end, **ALONGSIDE.get(s.name, {})}
                assert config_from_dict(given).to_dict()[s.name] == end
        for value in _beyond(s):
            with pytest.raises(ConfigError) as refused:
                config_from_dict({s.name: value}, source="the settings")
            message = str(refused.value)
            assert message.startswith(f"the settings: {s.name} must be {s.expected()}; got ")


def test_declaring_a_setting_is_enough_for_it_to_be_validated():
    from dataclasses import dataclass

    from cnn_core.config import check_values, setting, settings_of

    @dataclass(frozen=True)
    class Made:
        warmup_epochs: int = setting(
            "integer", 2, "Epochs of warm-up.", label="Warm-up", key="wu", low=0, high=20
        )
        head: str = setting(
            "choice", "dense", "The head.", label="Head", key="hd", choices=("dense", "gap")
        )

    declared = settings_of(Made)
    assert [(s.name, s.default) for s in declared] == [("warmup_epochs", 2), ("head", "dense")]
    assert check_values({"warmup_epochs": 3.0, "head": "gap"}, declared) == {
        "warmup_epochs": 3,
        "head": "gap",
    }
    with pytest.raises(
        ConfigError,
        match=r"^a\.json: warmup_epochs must be a whole number from 0 "
        r"to 20; got 21\.$",
    ):
        check_values({"warmup_epochs": 21}, declared, source="a.json")
    with pytest.raises(ConfigError, match='head must be one of "dense", "gap"; got "mlp"'):
        check_values({"head": "mlp"}, declared)


def test_a_setting_the_backend_cannot_run_is_refused_with_what_to_do():
    from cnn_core.config import check_backend_support, setting_named

    assert setting_named("steps_per_execution").backends == ("tensorflow", "jax")
    config = TrainConfig(steps_per_execution=4)
    check_backend_support(config, "tensorflow")
    check_backend_support(config, "jax")
    check_backend_support(TrainConfig(), "torch")  # the default runs everywhere
    with pytest.raises(ConfigError) as refused:
        check_backend_support(config, "torch")
    assert str(refused.value) == (
        "the configuration: steps_per_execution 4 needs TensorFlow or JAX, and Keras runs on "
        "PyTorch here (KERAS_BACKEND); set steps_per_execution to 1 or choose another backend."
    )


def test_the_cli_help_is_the_declared_help(capsys):
    from cnn_core.cli import main
    from cnn_core.config import setting_named

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    declared = setting_named("test_split")
    assert declared.help[1:].rstrip(".") + f" (default {declared.default})" in text


def test_the_readme_lists_every_declared_key_with_its_default():
    import re
    from pathlib import Path

    from cnn_core.config import SETTINGS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", readme, flags=re.MULTILINE))
    for s in SETTINGS:
        default = s.default
        if isinstance(default, str):
            expected = f'`"{default}"`'
        elif isinstance(default, bool) or default is None:
            expected = json.dumps(default)
        else:
            expected = f"{default:g}"
        assert table.get(s.name, "").strip() == expected, f"README's row for {s.name}"
