"""The training configuration: plain data, JSON in and out, validated with clear messages.

Each setting is declared once, on its `TrainConfig` field: type, bounds, default, help text, the
backends that support it and how the Train page draws it (`Setting`). Validation
(`config_from_dict`), the Train page's form (`dashboard/settings_form.py`) and the CLI's help all
read these declarations; nothing else repeats a bound.

The defaults reproduce the classic tutorial (Adam, learning rate 0.001, batch 64, 15 epochs,
validation split 0.2, no augmentation). A configuration file may give any subset of the keys;
the rest take the defaults; unknown keys are refused with a suggestion.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cnn_core import augment
from cnn_core.augment import Augmentation
from cnn_core.errors import ConfigError
from cnn_core.files import FileTooLargeError, NotRegularFileError, read_bounded
from cnn_core.layers import FREEZE_KEY, freezable_layers
from cnn_core.spec import ModelSpec

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "one_cycle")
CLASS_WEIGHTS = ("balanced",)  # or null: every image counts the same
WARMUP_FRACTION = 0.05  # cosine schedule: linear warm-up over the first 5% of steps
MAX_CONFIG_BYTES = 100_000
ALL_DEVICES = "all"  # the `devices` value (also null) for every GPU there is
MAX_DEVICES = 4096
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}

# The form's sections, in order, and how many settings sit side by side in each ("": no expander).
FINE_TUNING = "Fine-tuning"  # the section whose settings need a frozen Backbone
SECTIONS = {
    "": 5,
    "Schedule and regularisation": 4,
    FINE_TUNING: 3,
    "Augmentation": 5,
    "Advanced": 4,
}
KINDS = ("choice", "boolean", "integer", "number")


@dataclass(frozen=True)
class Setting:
    """One training setting, declared once: what it is, what it allows, and how a form shows it."""

    name: str  # the JSON key; "augmentation.zoom" for a key inside the augmentation object
    kind: str  # one of KINDS
    default: Any
    help: str  # what it means, in a sentence: the form's tooltip and the CLI's help
    label: str  # the form's label
    key: str  # the form widget's key, before the version suffix (tests find widgets by it)
    section: str = ""  # one of SECTIONS
    low: float | None = None  # integer and number: the bounds, inclusive unless *_open
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False  # null allowed (meaning off, or "draw one")
    null_words: tuple[str, ...] = ()  # nullable: JSON strings that also mean null ("all")
    choices: tuple[Any, ...] = ()  # choice: the allowed JSON values
    choice_labels: tuple[str, ...] = ()  # choice: what the form shows for each, if not the value
    backends: tuple[str, ...] = ()  # only these run a value other than the default; () = all
    widget: str = ""  # "slider" or "checkbox" where not the kind's usual widget
    step: float | None = None  # the form's step (sliders, number inputs)
    format: str | None = None  # the number input's printf format
    off: int | None = None  # nullable: the form's number that stands for null ("0 = off")
    wide: bool = False  # the form gives it a line of its own, below the section's columns
    tooltip: bool = True  # the form shows `help` beside the label (off where it has no room)

    @property
    def advanced(self) -> bool:
        return self.section == "Advanced"

    def supports(self, backend: str) -> bool:
        """Whether `backend` runs values other than the default."""
        return not self.backends or backend in self.backends

    def needs(self) -> str:
        """The backends that run values other than the default, as a reader names them."""
        return " or ".join(BACKEND_NAMES.get(b, b) for b in self.backends)

    def expected(self) -> str:
        """What a valid value is, as an error message says it."""
        if self.kind == "choice":
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        if self.kind == "boolean":
            return "true or false"
        null = " or null" if self.nullable else ""
        if self.null_words:
            null = "".join(f" or {json.dumps(word)}" for word in self.null_words)
        if self.kind == "integer":
            return f"a whole number from {self.low:,} to {self.high:,}{null}"
        if self.low_open and not self.high_open:
            return f"a number greater than {self.low:g} and at most {self.high:g}{null}"
        lo, hi = ("(" if self.low_open else "["), (")" if self.high_open else "]")
        return f"a number in {lo}{self.low:g}, {self.high:g}{hi}{null}"

    def check(self, value: Any) -> Any:
        """The value as the configuration keeps it; `ValueError` if it is not allowed."""
        if value is None and self.nullable:
            return None
        if isinstance(value, str) and value in self.null_words:
            return None
        if self.kind == "choice":
            for choice in self.choices:  # by type too: 1 is not true, 0.0 is not false
                if value is choice or (type(value) is type(choice) and value == choice):
                    return choice
            raise ValueError(self.expected())
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError(self.expected())
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(self.expected())
        whole = isinstance(value, int) or value.is_integer()  # why not float(): 10**1000 overflows
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(self.expected())
        if self.kind == "integer" and not whole:
            raise ValueError(self.expected())
        too_low = value < self.low or (self.low_open and value == self.low)
        too_high = value > self.high or (self.high_open and value == self.high)
        if too_low or too_high:
            raise ValueError(self.expected())
        return int(value) if self.kind == "integer" else float(value)


def setting(kind: str, default: Any, help: str, *, label: str, key: str, **hints: Any) -> Any:
    """A `TrainConfig` field declared with its `Setting` (its name is the field's)."""
    declared = Setting("", kind, default, help, label, key, **hints)
    return field(default=default, metadata={"setting": declared})


def settings_of(cls: type) -> tuple[Setting, ...]:
    """The settings declared on the fields of dataclass `cls`, in field order."""
    return tuple(
        _named(f.metadata["setting"], f.name, f.default)
        for f in fields(cls)
        if "setting" in f.metadata
    )


def _named(declared: Setting, name: str, default: Any) -> Setting:
    return replace(declared, name=name, default=None if default is MISSING else default)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: every field has a default; JSON keys are the field names."""

    optimizer: str = setting(
        "choice",
        "adam",
        "adam, adamw, sgd (with momentum) or rmsprop.",
        label="Optimizer",
        key="opt",
        choices=OPTIMIZERS,
    )
    learning_rate: float = setting(
        "number",
        0.001,
        "The peak rate when a schedule is used.",
        label="Learning rate",
        key="lr",
        low=0.0,
        high=10.0,
        low_open=True,
        format="%g",  # shows 1e-07 as such, not as 0.00000
    )
    batch_size: int = setting(
        "integer",
        64,
        "Images per training step; clamped (with a warning) to the number of training images.",
        label="Batch size",
        key="bs",
        low=1,
        high=65_536,
    )
    epochs: int = setting(
        "integer",
        15,
        "Passes over the training images.",
        label="Epochs",
        key="ep",
        low=1,
        high=10_000,
    )
    validation_split: float = setting(
        "number",
        0.2,
        "Share of the training images held out to measure overfitting; 0 = no validation.",
        label="Validation split",
        key="vs",
        low=0.0,
        high=0.9,
        widget="slider",
        step=0.05,
    )
    lr_schedule: str = setting(
        "choice",
        "constant",
        "constant, cosine (with a linear warm-up) or one_cycle.",
        label="Learning-rate schedule",
        key="sched",
        section="Schedule and regularisation",
        choices=SCHEDULES,
    )
    weight_decay: float = setting(
        "number",
        0.0,
        "Decoupled weight decay, applied by every optimizer.",
        label="Weight decay",
        key="wd",
        section="Schedule and regularisation",
        low=0.0,
        high=0.5,
        format="%.5f",
    )
    label_smoothing: float = setting(
        "number",
        0.0,
        "Share of each label spread over the other classes.",
        label="Label smoothing",
        key="ls",
        section="Schedule and regularisation",
        low=0.0,
        high=0.5,
        high_open=True,
        widget="slider",
        step=0.05,
    )
    small_image_share: float = setting(
        "number",
        0.0,
        "Progressive resizing: this share of the epochs, the first ones, train on the images "
        "scaled down to small_image_scale of their side, which costs less per epoch (0.4 of 10 "
        "epochs: the first 4, rounded down, never the last); the rest, and every evaluation and "
        "prediction, see them whole. Needs a network that takes any image size (global "
        "pooling, no Flatten). 0 = off.",
        label="Small-image share of the epochs, first (0 = off)",
        key="sif",
        section="Schedule and regularisation",
        low=0.0,
        high=1.0,
        high_open=True,
        widget="slider",
        step=0.05,
    )
    small_image_scale: float = setting(
        "number",
        0.75,
        "With small_image_share: the side of the smaller images as a share of the model's "
        "input size (0.75: 24x24 for 32x32).",
        label="Small-image scale",
        key="sis",
        section="Schedule and regularisation",
        low=0.25,
        high=1.0,
        high_open=True,
        widget="slider",
        step=0.05,
    )
    augmentation: Augmentation = field(default_factory=Augmentation)  # settings: AUGMENTATION
    test_time_flip: bool = setting(
        "boolean",
        False,
        "Evaluation and prediction average each image's probabilities with its mirror image's "
        "(test-time augmentation): usually a little more accurate, twice the time to predict. "
        "Exports hold the one model, without it.",
        label="Test-time flip: predict on each image and its mirror",
        key="ttf",
        section="Augmentation",
        wide=True,
    )
    test_time_shift: int = setting(
        "integer",
        0,
        "Evaluation and prediction also average over two copies of each image shifted this "
        "many pixels (down-right and up-left, borders mirrored), and over their mirrors with "
        "test-time flip: 3 or 6 views where there were 1 or 2, three times the time to "
        "predict. Exports hold the one model, without it. 0 = off.",
        label="Test-time shift (px)",
        key="tts",
        section="Augmentation",
        low=0,
        high=4,
    )
    early_stopping_patience: int | None = setting(
        "integer",
        None,
        "Stop after this many epochs without a better validation loss; off when null.",
        label="Early stopping patience (0 = off)",
        key="es",
        section="Schedule and regularisation",
        low=1,
        high=10_000,
        nullable=True,
        off=0,
    )
    fine_tune: int | None = setting(
        "integer",
        None,
        "Epochs trained with the pretrained backbone frozen first; the backbone is then "
        "unfrozen for the remaining epochs at the learning rate times fine_tune_lr_factor. "
        "Needs a frozen Backbone; off when null.",
        label="Fine-tune: frozen epochs first (0 = off)",
        key="ft",
        section=FINE_TUNING,
        low=1,
        high=9_999,  # fewer than `epochs`, whose most is 10,000
        nullable=True,
        off=0,
    )
    fine_tune_lr_factor: float = setting(
        "number",
        0.1,
        "With fine_tune: the learning rate of the unfrozen epochs is the learning rate times this.",
        label="Fine-tune: learning-rate factor",
        key="ftf",
        section=FINE_TUNING,
        low=0.0,
        high=1.0,
        low_open=True,
        format="%g",
    )
    fine_tune_warmup: float = setting(
        "number",
        0.1,
        "With fine_tune: the share of the unfrozen epochs' steps over which their learning rate "
        "rises linearly from a hundredth to its peak; 0 = none.",
        label="Fine-tune: warm-up share",
        key="ftw",
        section=FINE_TUNING,
        low=0.0,
        high=0.5,
        widget="slider",
        step=0.05,
    )
    seed: int | None = setting(
        "integer",
        None,
        "Seeds the weights, the split and the shuffling; null: a seed is drawn and recorded, so "
        "a run can be repeated.",
        label="Seed (0 = random)",
        key="seed",
        section="Advanced",
        low=0,
        high=2**31 - 1,
        nullable=True,
        off=0,
    )
    limit: int | None = setting(
        "integer",
        None,
        "A quick try: N training images and the same share of the validation and test images, "
        "chosen per class before any image is decoded.",
        label="Use only N training images (0 = all)",
        key="lim",
        section="Advanced",
        low=1,
        high=100_000_000,
        nullable=True,
        off=0,
    )
    mixed_precision: bool | str = setting(
        "choice",
        "auto",
        "bfloat16 compute, float32 weights. Auto turns it on for GPUs and for CPUs with native "
        "bfloat16 (AVX512-BF16, AMX) under TensorFlow.",
        label="Mixed precision",
        key="mp",
        section="Advanced",
        choices=("auto", True, False),
        choice_labels=("auto (where faster)", "on", "off"),
    )
    steps_per_execution: int = setting(
        "integer",
        1,
        "Batches per compiled call; higher cuts overhead on GPUs.",
        label="Steps per execution",
        key="spe",
        section="Advanced",
        low=1,
        high=10_000,
        backends=("tensorflow", "jax"),  # Keras' PyTorch trainer refuses more than 1
    )
    devices: int | None = setting(
        "integer",
        None,
        "Devices that train the run together, each on its share of every batch (data "
        'parallel): "all" (null) is every GPU, or one device on a machine without; the batch '
        "size must divide by it.",
        label="Devices (0 = all)",
        key="dev",
        section="Advanced",
        low=1,
        high=MAX_DEVICES,
        nullable=True,
        null_words=(ALL_DEVICES,),
        off=0,
        backends=("tensorflow", "jax"),  # Keras' distribution has no PyTorch part
    )
    scale_lr: bool = setting(
        "boolean",
        False,
        "Multiply the learning rate by the number of devices (the linear scaling rule, Goyal et "
        "al. 2017), for a batch size raised as many times; off: the rate stays as given.",
        label="Scale rate",
        key="slr",
        section="Advanced",
    )
    validation_freq: int = setting(
        "integer",
        1,
        "Validate every N epochs.",
        label="Validate every N epochs",
        key="vf",
        section="Advanced",
        low=1,
        high=10_000,
    )
    momentum: float = setting(
        "number",
        0.9,
        "Momentum of sgd and rmsprop.",
        label="Momentum (sgd, rmsprop)",
        key="mom",
        section="Advanced",
        low=0.0,
        high=1.0,
        high_open=True,
        widget="slider",
        step=0.01,
    )
    nesterov: bool = setting(
        "boolean",
        True,
        "Nesterov momentum for sgd.",
        label="Nesterov (sgd)",
        key="nest",
        section="Advanced",
        tooltip=False,  # the label says it; the column has no room
    )
    test_split: float = setting(
        "number",
        0.2,
        "Share of each class held out for testing when the class folders come without train/ "
        "and test/ folders; seeded, so the same files always give the same split.",
        label="Test split (folders without one)",
        key="ts",
        section="Advanced",
        low=0.05,
        high=0.9,
        widget="slider",
        step=0.05,
    )
    class_weight: str | None = setting(
        "choice",
        None,
        "Each class weighs as much in the loss, however many images it has: for data with far "
        "more images of some classes than of others.",
        label="Balance the classes",
        key="cw",
        section="Advanced",
        choices=(*CLASS_WEIGHTS, None),
        widget="checkbox",  # checked: the first choice
        wide=True,
    )

    @property
    def small_image_epochs(self) -> int:
        """How many epochs, the first ones, progressive resizing trains on smaller images:
        small_image_share of `epochs` rounded down, and never the last (the run's own epochs,
        so training more epochs later adds full-size ones)."""
        if not self.small_image_share:
            return 0
        return min(math.floor(self.small_image_share * self.epochs + 1e-9), self.epochs - 1)

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


def _augmentation(name: str, label: str, key: str, step: float) -> Setting:
    high, meaning = augment._BOUNDS[name]  # why: declared beside Augmentation.from_dict, its check
    return Setting(
        f"augmentation.{name}",
        "number",
        getattr(Augmentation(), name),
        meaning[0].upper() + meaning[1:] + ".",
        label,
        key,
        section="Augmentation",
        low=0.0,
        high=high,
        widget="slider",
        step=step,
    )


SETTINGS = settings_of(TrainConfig)  # every top-level key but "augmentation"
AUGMENTATION = (  # the keys of the "augmentation" object; Augmentation.from_dict checks them
    Setting(
        "augmentation.flip",
        "boolean",
        Augmentation().flip,
        "Mirror left-right half of the time.",
        "Flip",
        "flip",
        section="Augmentation",
    ),
    Setting(
        "augmentation.alternate_flip",
        "boolean",
        Augmentation().alternate_flip,
        "With flip: each training image is mirrored in every other epoch (a seeded half of "
        "them in the first) instead of by a coin toss each time, so that every image is seen "
        "both ways every two epochs (airbench's alternating flip).",
        "Alternate the flips: each image mirrored in every other epoch, not at random",
        "aflip",
        section="Augmentation",
        wide=True,
    ),
    _augmentation("translation", "Translation", "tr", 0.025),
    _augmentation("rotation", "Rotation", "rot", 0.025),
    _augmentation("zoom", "Zoom", "zoom", 0.05),
    _augmentation("contrast", "Contrast", "con", 0.05),
)
_KEYS = tuple(f.name for f in fields(TrainConfig))
SETTING_NAMES = tuple(declared.name for declared in (*SETTINGS, *AUGMENTATION))  # by one name each


def setting_named(name: str) -> Setting:
    """The declaration of key `name` ("epochs", "augmentation.zoom")."""
    for declared in (*SETTINGS, *AUGMENTATION):
        if declared.name == name:
            return declared
    raise KeyError(name)


def cli_help(name: str, *, off: bool = False) -> str:
    """A CLI flag's help: the setting's help text and its default (argparse shows no bounds).
    `off`: the flag takes the setting's `off` number for null, as the form does."""
    declared = setting_named(name)
    text = declared.help[0].lower() + declared.help[1:].rstrip(".")
    if off and declared.off is not None:
        text += f" (give {declared.off} for null)"
    if declared.default is None:  # the help says what null means
        return text
    return f"{text} (default {json.dumps(declared.default)})"


def config_from_dict(
    data: Any,
    *,
    source: str = "the configuration",
    spelled: Mapping[str, str] = MappingProxyType({}),
) -> TrainConfig:
    """Validate decoded JSON; raise `ConfigError` naming the key and the allowed values.
    `spelled`: how `source` writes a key the message tells to change (a command-line flag)."""
    if data is None:
        return TrainConfig()
    if not isinstance(data, dict):
        raise ConfigError(f'{source} must be a JSON object such as {{"epochs": 10}}.')
    for key in data:
        if key not in _KEYS:
            raise _unknown_key(key, _KEYS, source=source)
    values = check_values(data, SETTINGS, source=source)
    values["augmentation"] = Augmentation.from_dict(
        data.get("augmentation"), source=f"{source}: augmentation"
    )
    fine_tune, epochs = values.get("fine_tune"), values.get("epochs", TrainConfig.epochs)
    if fine_tune is not None and fine_tune >= epochs:
        lower, raise_ = spelled.get("fine_tune", "fine_tune"), spelled.get("epochs", "epochs")
        raise ConfigError(
            f"{source}: fine_tune ({fine_tune}) must be fewer than epochs ({epochs}): it counts "
            f"the frozen epochs the unfrozen ones follow; raise {raise_} or lower {lower}."
        )
    _check_devices(values, source)
    return TrainConfig(**values)


def _check_devices(values: Mapping[str, Any], source: str) -> None:
    devices, batch = values.get("devices"), values.get("batch_size", TrainConfig.batch_size)
    if devices is not None and batch % devices:
        raise ConfigError(
            f"{source}: batch_size ({batch}) must divide by devices ({devices}), so that each "
            f"device gets the same share of every batch; use batch_size "
            f"{fit_batch(batch, devices)} or another multiple of {devices}."
        )


def fit_batch(batch_size: int, devices: int) -> int:
    """The multiple of `devices` nearest to `batch_size` (not below `devices`): the one-click fix
    for a batch size that does not divide by the device count."""
    lower = max(batch_size // devices * devices, devices)
    upper = lower + devices
    return lower if batch_size - lower <= upper - batch_size else upper


def config_with_settings(
    config: TrainConfig,
    changes: Mapping[str, Any],
    *,
    source: str = "the configuration",
    spelled: Mapping[str, str] = MappingProxyType({}),
) -> TrainConfig:
    """`config` with declared settings changed by name ("epochs", "augmentation.zoom"; None is
    null), validated by `config_from_dict` as a file is. An unknown name is refused with the
    setting it is closest to. `spelled`: how `source` writes a key, where not as its name."""
    data = config.to_dict()
    for name, value in changes.items():
        if name not in SETTING_NAMES:
            raise _unknown_key(name, SETTING_NAMES, source=source)
        outer, _, inner = name.partition(".")  # why: "augmentation.zoom" is inside an object
        if inner:
            data[outer] = {**data[outer], inner: value}
        else:
            data[name] = value
    return config_from_dict(data, source=source, spelled=spelled)


def _unknown_key(key: Any, keys: tuple[str, ...], *, source: str) -> ConfigError:
    guess = difflib.get_close_matches(str(key), keys, n=1)
    hint = f'did you mean "{guess[0]}"? ' if guess else ""
    return ConfigError(
        f"{source} has unknown key {_quote(key)}; {hint}the keys are " + ", ".join(keys) + "."
    )


def check_values(
    data: Mapping[str, Any], settings: Iterable[Setting], *, source: str = "the configuration"
) -> dict[str, Any]:
    """The values `data` gives for `settings`, as kept; a `ConfigError` for the first one that
    is not allowed, saying where, which key, what it must be and what it got."""
    values: dict[str, Any] = {}
    for declared in settings:
        if declared.name not in data:
            continue
        value = data[declared.name]
        try:
            values[declared.name] = declared.check(value)
        except ValueError as exc:
            shown = json.dumps(value)[:40] if _jsonable(value) else "?"
            raise ConfigError(f"{source}: {declared.name} must be {exc}; got {shown}.") from None
    return values


def check_backend_support(
    config: TrainConfig, backend: str, *, source: str = "the configuration"
) -> None:
    """A `ConfigError` if `config` asks for something the Keras `backend` cannot run."""
    for declared in SETTINGS:
        value = getattr(config, declared.name)
        if declared.supports(backend) or value == declared.default:
            continue
        raise ConfigError(
            f"{source}: {declared.name} {json.dumps(value)} needs {declared.needs()}, and Keras "
            f"runs on {BACKEND_NAMES.get(backend, backend)} here (KERAS_BACKEND); set "
            f"{declared.name} to {json.dumps(declared.default)} or choose another backend."
        )


def check_spec_support(
    config: TrainConfig, spec: ModelSpec, *, source: str = "the configuration"
) -> None:
    """A `ConfigError` if `config` asks for something `spec` cannot do: fine_tune needs a frozen
    backbone to unfreeze. `spec` is one that `shapes.check_spec` accepts."""
    if config.fine_tune and (refusal := fine_tune_refusal(spec)):
        raise ConfigError(
            f"{source}: fine_tune {config.fine_tune} cannot run on this spec. {refusal} Or set "
            "fine_tune to null to train without fine-tuning."
        )
    if config.small_image_share and (
        refusal := small_image_refusal(spec, config.small_image_scale)
    ):
        raise ConfigError(
            f"{source}: small_image_share {config.small_image_share:g} cannot run on this spec. "
            f"{refusal} Or set small_image_share to 0 to train at full size throughout."
        )


def small_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Progressive resizing's image size (`cnn_core.resizing`): `scale` of each side, rounded,
    at least 1 pixel."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def small_image_refusal(spec: ModelSpec, scale: float) -> str | None:
    """Why `spec` (one that `shapes.check_spec` accepts) cannot train on images scaled by
    `scale` and predict on whole ones with the same weights, or None: the network must build at
    the smaller size and give the classifier the same shape there."""
    from cnn_core.shapes import analyze

    height, width, channels = spec.input_shape
    small = (*small_size(height, width, scale), channels)
    full, scaled = analyze(spec), analyze(replace(spec, input_shape=small))
    size = f"{small[0]}x{small[1]}"
    if scaled.problems:
        return (
            f"At {size} (small_image_scale {scale:g}) this network cannot be built: "
            f"{scaled.problems[0].message} Raise small_image_scale."
        )
    fix = (
        "the network depends on the image size; end it with global pooling "
        "(GlobalAveragePooling2D or GlobalMaxPooling2D) instead of Flatten."
    )
    for whole, smaller in zip(full.layers, scaled.layers, strict=True):
        if whole.params != smaller.params:
            where = "the classifier head" if whole.head else f"layer {whole.index + 1}"
            return (
                f"At {size} {where} ({whole.type}) would need {smaller.params:,} parameters "
                f"where it has {whole.params:,}: {fix}"
            )
    body = [(w, s) for w, s in zip(full.layers, scaled.layers, strict=True) if not w.head]
    if body and body[-1][0].output_shape != body[-1][1].output_shape:
        return (
            f"The classifier gets {_shape(body[-1][0].output_shape)} at full size but "
            f"{_shape(body[-1][1].output_shape)} at {size}: {fix}"
        )
    return None


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def fine_tune_refusal(spec: ModelSpec) -> str | None:
    """Why `spec` (one that `shapes.check_spec` accepts) cannot be fine-tuned, or None: the one
    rule behind `check_spec_support` and the Train form's disabled Fine-tuning section."""
    freezable = freezable_layers(spec.layers)
    if not freezable:
        return (
            "Fine-tuning needs a frozen Backbone as the first layer, as the Transfer presets "
            "have; this network has no Backbone layer."
        )
    for index, trainable in freezable:
        if trainable:
            return (
                f"Fine-tuning starts with the backbone frozen, but layer {index + 1} "
                f"({spec.layers[index].type}) is already trainable; set its {FREEZE_KEY} to false."
            )
    return None


def unusable_settings(spec: ModelSpec) -> dict[str, str]:
    """The settings `spec` cannot use, each with why (the Train form draws them disabled)."""
    refusal = fine_tune_refusal(spec)
    fine_tuning = (s for s in SETTINGS if s.section == FINE_TUNING)
    found = {s.name: refusal for s in fine_tuning} if refusal else {}
    if small := small_image_refusal(spec, TrainConfig.small_image_scale):
        found |= {"small_image_share": small, "small_image_scale": small}
    return found


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
        text = read_bounded(path, MAX_CONFIG_BYTES, follow_links=True)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist; check the path.") from None
    except NotRegularFileError:  # why: /dev/zero never ends, a named pipe may block
        raise ConfigError(f"{path} is not a regular file; give the path of a .json file.") from None
    except FileTooLargeError:
        raise ConfigError(f"{path} is too large for a training configuration.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path} ({exc.strerror}).") from None
    return parse_config(text, source=str(path))


def effective_batch_size(
    config: TrainConfig, n_train: int, *, devices: int = 1
) -> tuple[int, str | None]:
    """The batch size to use for `n_train` images on `devices` devices, and a warning if it had
    to be clamped: to the training images, kept a multiple of the devices."""
    if config.batch_size <= n_train:
        return config.batch_size, None
    if n_train < devices:
        raise ConfigError(
            f"{n_train:,} training images cannot be shared between {devices} devices; use fewer "
            "devices or more images."
        )
    clamped = max(n_train // devices * devices, 1)
    return clamped, (
        f"batch_size {config.batch_size} is larger than the {n_train:,} training images; "
        f"using {clamped}."
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _quote(key: Any) -> str:
    """A key as JSON writes it: a null byte or other control character shows as \\u0000."""
    return json.dumps(str(key)[:40], ensure_ascii=False)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
