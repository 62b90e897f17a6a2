"""The training configuration: plain data, JSON in and out, validated with clear messages.

The defaults reproduce the classic tutorial (Adam, learning rate 0.001, batch 64, 15 epochs,
validation split 0.2, no augmentation). A configuration file may give any subset of the keys;
the rest take the defaults; unknown keys are refused with a suggestion.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cnn_core.augment import Augmentation
from cnn_core.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "one_cycle")
CLASS_WEIGHTS = ("balanced",)  # or null: every image counts the same
WARMUP_FRACTION = 0.05  # cosine schedule: linear warm-up over the first 5% of steps
MAX_CONFIG_BYTES = 100_000


@dataclass(frozen=True)
class TrainConfig:
    """How to train: every field has a default; JSON keys are the field names."""

    optimizer: str = "adam"  # adam, adamw, sgd (with momentum) or rmsprop
    learning_rate: float = 0.001  # the peak rate when a schedule is used
    batch_size: int = 64  # clamped (with a warning) to the number of training images
    epochs: int = 15
    validation_split: float = 0.2  # held out from the training images; 0 = no validation
    lr_schedule: str = "constant"  # constant, cosine (with warm-up) or one_cycle
    weight_decay: float = 0.0  # decoupled weight decay, applied by every optimizer
    label_smoothing: float = 0.0
    augmentation: Augmentation = field(default_factory=Augmentation)
    early_stopping_patience: int | None = None  # epochs without val_loss improvement; None = off
    seed: int | None = None  # None: a seed is drawn and recorded, so a run can be repeated
    limit: int | None = None  # a quick try: this many training images (and the same share of the
    # validation and test images), chosen per class before decoding
    test_split: float = 0.2  # held out for testing from class folders that come without a split
    mixed_precision: bool | str = "auto"  # "auto": on where bfloat16 is faster (builder)
    steps_per_execution: int = 1  # batches per compiled call; higher cuts overhead on GPUs
    validation_freq: int = 1  # validate every N epochs
    momentum: float = 0.9  # sgd and rmsprop
    nesterov: bool = True  # sgd
    class_weight: str | None = None  # "balanced": each class weighs as much, however many images

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["augmentation"] = self.augmentation.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def with_changes(self, **changes: Any) -> TrainConfig:
        """A copy with some keys changed, validated like a file (None values are ignored)."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return config_from_dict(data)


_KEYS = tuple(f.name for f in fields(TrainConfig))


def config_from_dict(data: Any, *, source: str = "the configuration") -> TrainConfig:
    """Validate decoded JSON; raise `ConfigError` naming the key and the allowed values."""
    if data is None:
        return TrainConfig()
    if not isinstance(data, dict):
        raise ConfigError(f'{source} must be a JSON object such as {{"epochs": 10}}.')
    for key in data:
        if key not in _KEYS:
            guess = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f'did you mean "{guess[0]}"? ' if guess else ""
            raise ConfigError(
                f"{source} has unknown key {_quote(key)}; {hint}the keys are "
                + ", ".join(_KEYS)
                + "."
            )
    values: dict[str, Any] = {}
    check = _Checker(data, source)
    values["optimizer"] = check.choice("optimizer", OPTIMIZERS)
    values["learning_rate"] = check.number("learning_rate", low=0, high=10, low_open=True)
    values["batch_size"] = check.integer("batch_size", low=1, high=65_536)
    values["epochs"] = check.integer("epochs", low=1, high=10_000)
    values["validation_split"] = check.number("validation_split", low=0, high=0.9)
    values["lr_schedule"] = check.choice("lr_schedule", SCHEDULES)
    values["weight_decay"] = check.number("weight_decay", low=0, high=0.5)
    values["label_smoothing"] = check.number("label_smoothing", low=0, high=0.5, high_open=True)
    values["early_stopping_patience"] = check.integer(
        "early_stopping_patience", low=1, high=10_000, nullable=True
    )
    values["seed"] = check.integer("seed", low=0, high=2**31 - 1, nullable=True)
    values["limit"] = check.integer("limit", low=1, high=100_000_000, nullable=True)
    values["test_split"] = check.number("test_split", low=0.05, high=0.9)
    values["steps_per_execution"] = check.integer("steps_per_execution", low=1, high=10_000)
    values["validation_freq"] = check.integer("validation_freq", low=1, high=10_000)
    values["momentum"] = check.number("momentum", low=0, high=1, high_open=True)
    values["nesterov"] = check.boolean("nesterov")
    values["class_weight"] = check.choice("class_weight", (*CLASS_WEIGHTS, None))
    mixed = data.get("mixed_precision", TrainConfig.mixed_precision)
    if mixed not in (True, False, "auto"):
        raise ConfigError(f'{source}: mixed_precision must be true, false or "auto".')
    values["mixed_precision"] = mixed
    values["augmentation"] = Augmentation.from_dict(
        data.get("augmentation"), source=f"{source}: augmentation"
    )
    return TrainConfig(**{k: v for k, v in values.items() if v is not _UNSET})


def parse_config(text: str | bytes, *, source: str = "the configuration") -> TrainConfig:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source} is too large for a training configuration; check the file.")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:80]
        raise ConfigError(f"{source} is not valid JSON ({reason}).") from None
    return config_from_dict(data, source=source)


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # why: /dev/zero never ends, a named pipe may block
            raise ConfigError(f"{path} is not a regular file; give the path of a .json file.")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is too large for a training configuration.")
        with path.open("rb") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)  # +1: a file that grew is still too large
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist; check the path.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path} ({exc.strerror}).") from None
    return parse_config(text, source=str(path))


def effective_batch_size(config: TrainConfig, n_train: int) -> tuple[int, str | None]:
    """The batch size to use for `n_train` images, and a warning if it had to be clamped."""
    if config.batch_size <= n_train:
        return config.batch_size, None
    return max(n_train, 1), (
        f"batch_size {config.batch_size} is larger than the {n_train:,} training images; "
        f"using {max(n_train, 1)}."
    )


class _Unset:
    pass


_UNSET: Any = _Unset()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class _Checker:
    """Reads one key at a time, with the message a user needs when it is wrong."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data, self.source = data, source

    def _fail(self, key: str, expected: str) -> ConfigError:
        value = json.dumps(self.data[key]) if _jsonable(self.data[key]) else "?"
        return ConfigError(f"{self.source}: {key} must be {expected}; got {value[:40]}.")

    def choice(self, key: str, options: tuple[str | None, ...]) -> Any:
        if key not in self.data:
            return _UNSET
        if self.data[key] not in options:
            names = ["null" if o is None else f'"{o}"' for o in options]
            raise self._fail(key, "one of " + ", ".join(names))
        return self.data[key]

    def boolean(self, key: str) -> Any:
        if key not in self.data:
            return _UNSET
        if not isinstance(self.data[key], bool):
            raise self._fail(key, "true or false")
        return self.data[key]

    def number(
        self, key: str, *, low: float, high: float, low_open: bool = False, high_open: bool = False
    ) -> Any:
        if key not in self.data:
            return _UNSET
        value = self.data[key]
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        expected = f"a number in {lo}{low:g}, {high:g}{hi}"
        if key == "learning_rate":
            expected = f"a number greater than 0 and at most {high:g}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, expected)
        if not math.isfinite(value):
            raise self._fail(key, expected)
        if (
            value < low
            or value > high
            or (low_open and value == low)
            or (high_open and value == high)
        ):
            raise self._fail(key, expected)
        return float(value)

    def integer(self, key: str, *, low: int, high: int, nullable: bool = False) -> Any:
        if key not in self.data:
            return _UNSET
        value = self.data[key]
        if value is None and nullable:
            return None
        expected = f"a whole number from {low:,} to {high:,}" + (" or null" if nullable else "")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, expected)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise self._fail(key, expected)
        if not low <= value <= high:
            raise self._fail(key, expected)
        return int(value)


def _quote(key: Any) -> str:
    """A key as JSON writes it: a null byte or other control character shows as \\u0000."""
    return json.dumps(str(key)[:40], ensure_ascii=False)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
