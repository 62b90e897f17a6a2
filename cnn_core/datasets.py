"""Where the dataset names have always been importable from; the code is `cnn_core.data`."""

from cnn_core.data import (
    CIFAR10_CLASSES,
    CIFAR10_URL,
    Dataset,
    Progress,
    SourceInfo,
    check_source,
    describe_source,
    inspect_source,
    keras_cifar10_folder,
    load_dataset,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "Dataset",
    "Progress",
    "SourceInfo",
    "check_source",
    "describe_source",
    "inspect_source",
    "keras_cifar10_folder",
    "load_dataset",
]
