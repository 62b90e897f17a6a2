"""A run's data: loaded as its configuration says, split into training and validation
images (stratified, seeded), recorded (split.json), and weighed for unbalanced classes."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from cnn_core.balance import (
    IMBALANCE_HINT,
    balanced_class_weights,
    imbalance_ratio,
    stratified_split,
)
from cnn_core.config import TrainConfig, effective_batch_size
from cnn_core.datasets import Dataset, load_dataset
from cnn_core.errors import UserError
from cnn_core.runs import Phase, Progress, Run
from cnn_core.spec import ModelSpec


def split_indices(
    data: Dataset, config: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Which training images train and which validate (indices into `data.x_train`, sorted):
    the validation split, stratified and seeded, so every class is on both sides (when it has two
    images or more). The `limit` was applied when the data was loaded, before decoding. A dataset
    with its own validation folder (`data.x_val`) keeps it: None for the validation indices then."""
    labels = data.y_train
    subset = np.arange(len(labels))
    if data.x_val is not None and data.y_val is not None:
        return subset, None
    keep, held = stratified_split(labels[subset], config.validation_split, seed=seed)
    if len(keep) == 0:
        raise UserError(
            f"no training images are left after the validation split ({len(subset)} images, "
            f"validation_split {config.validation_split}); lower validation_split or raise limit."
        )
    return subset[keep], subset[held]


def split_data(
    data: Dataset, config: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Training and validation arrays, as `split_indices` chooses them."""
    train, val = split_indices(data, config, seed)
    if val is None:
        return data.x_train[train], data.y_train[train], data.x_val, data.y_val
    if len(val) == 0:
        return data.x_train[train], data.y_train[train], None, None
    return data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val]


def record_split(run: Run, data: Dataset, train: np.ndarray, val: np.ndarray | None) -> None:
    """Which files trained, validated and tested this run (relative to the source), so that
    what it was taught and tested on can be told later; a source without file names (CIFAR-10
    batches) records the training images' indices."""

    def names(files: tuple[str, ...], rows: np.ndarray) -> list[str] | list[int]:
        return [files[i] for i in rows] if files else rows.tolist()

    split = {
        "train": names(data.train_files, train),
        "validation": (list(data.val_files or ()) if val is None else names(data.train_files, val)),
        "validation_from": "a validation folder" if val is None else "the training images",
        "test": list(data.test_files) if data.test_files else len(data.y_test),
    }
    run.write_split(split)


def class_weights(
    config: TrainConfig, labels: np.ndarray, num_classes: int
) -> tuple[dict[int, float] | None, str | None]:
    """`model.fit`'s class_weight for the configuration, and a note on unbalanced classes."""
    ratio = imbalance_ratio(labels, num_classes)
    if config.class_weight == "balanced":
        note = f"classes weighted to balance them (the training images are {ratio:.1f}:1)."
        return balanced_class_weights(labels, num_classes), note if ratio > 1 else None
    if ratio > IMBALANCE_HINT:
        return None, (
            f"the classes are unbalanced ({ratio:.1f}:1 between the largest and the smallest); "
            'consider class weights ("Balance the classes" in the settings, or class_weight '
            '"balanced").'
        )
    return None, None


def load_run_data(
    run: Run, spec: ModelSpec, config: TrainConfig
) -> tuple[ModelSpec, Dataset, list[str]]:
    """The run's dataset, loaded as its configuration says (test split, limit); the spec sized
    to the data's classes (and rewritten in the run when it changes); dataset.json completed;
    and the notes that tell the user what was found."""
    run.write_progress(Progress(phase=Phase.LOADING))
    source = run.dataset().get("source")
    h, w, c = spec.input_shape
    data = load_dataset(
        source, image_size=(h, w), channels=c, test_split=config.test_split, limit=config.limit
    )
    notes: list[str] = []
    if data.skipped:
        notes.append(
            f"{data.skipped} file(s) in the class folders were skipped: not images, or "
            "unreadable (the dataset check on the Train page lists them)."
        )
    if spec.num_classes != len(data.class_names):
        notes.append(
            f"the spec had {spec.num_classes} classes, the data has {len(data.class_names)}; "
            "the classifier was sized to the data."
        )
        spec = replace(spec, num_classes=len(data.class_names))
        run.write_spec(spec)
    dataset_info = {**run.dataset(), "class_names": list(data.class_names)}
    dataset_info.update(train_images=len(data.y_train), test_images=len(data.y_test))
    dataset_info.update(layout=data.layout, files_found=data.found, files_skipped=data.skipped)
    run.write_dataset(dataset_info)
    if data.layout:
        notes.append(f"dataset: {data.layout}.")
    if config.limit is not None:
        val_images = len(data.y_val) if data.y_val is not None else 0
        notes.append(
            f"limit {config.limit}: a quick try on {len(data.y_train)} training, {val_images} "
            f"validation-folder and {len(data.y_test)} test images, chosen per class before "
            "decoding."
        )
    return spec, data, notes


@dataclass(frozen=True)
class RunPlan:
    """What a run trains on, as decided before the model is built."""

    spec: ModelSpec  # sized to the data's classes
    data: Dataset
    train: np.ndarray  # rows of data.x_train that train
    x_val: np.ndarray | None  # the validation images' array (a folder's, or x_train), or None
    y_val: np.ndarray | None
    val_rows: np.ndarray | None  # their rows in x_val
    batch_size: int  # as trained: clamped to the images, a multiple of the devices
    class_weight: dict[int, float] | None
    steps: int  # batches per epoch


def plan_run(
    run: Run, config: TrainConfig, seed: int, *, devices: int, notes: tuple[str, ...]
) -> tuple[RunPlan, tuple[str, ...]]:
    """Load and split the run's data (recording the split) for training on `devices` devices;
    the plan, and the run's notes with what the user should know added."""
    spec, data, data_notes = load_run_data(run, run.spec(), config)
    found = [*notes, *data_notes]
    if config.scale_lr and devices > 1:
        found.append(
            f"learning rate {config.learning_rate:g}: the configured rate times {devices} "
            "devices (scale_lr)."
        )
    train, val = split_indices(data, config, seed)
    record_split(run, data, train, val)
    y_train = data.y_train[train]  # labels only: the images are read a batch at a time
    x_val, y_val, val_rows = data.x_val, data.y_val, None  # a validation folder, or none
    if val is None and data.y_val is not None:
        val_rows = np.arange(len(data.y_val))
    elif val is not None and len(val):
        x_val, y_val, val_rows = data.x_train, data.y_train, val
    else:
        x_val = y_val = None
    batch_size, warning = effective_batch_size(config, len(y_train), devices=devices)
    weights, balance_note = class_weights(config, y_train, len(data.class_names))
    dropped = len(y_train) % devices
    for note in (balance_note, warning, _dropped_note(dropped, devices)):
        if note and note not in found:
            found.append(note)
    steps = math.ceil((len(y_train) - dropped) / batch_size)
    plan = RunPlan(spec, data, train, x_val, y_val, val_rows, batch_size, weights, steps)
    return plan, tuple(dict.fromkeys(found))


def _dropped_note(dropped: int, devices: int) -> str | None:
    if not dropped:
        return None
    return (
        f"each epoch leaves out {dropped} of its training images (a different few each "
        f"epoch), so that every batch divides by the {devices} devices."
    )
