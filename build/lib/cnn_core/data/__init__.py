"""Dataset sources made into uint8 arrays: CIFAR-10 (downloaded or the official archive) and
trees of image folders, as folders or archives.

`load_dataset` turns a source into a `Dataset` of uint8 arrays at the model's input size,
decoding each image once and caching the result on disk (under `settings.cache_dir()`), keyed by
the source's identity; `inspect_source` looks at one cheaply, before a run is made. The modules:

    sources   what a source names, the cheap look, and loading it
    layout    folder trees: listing them, finding the class folders (split or not, wrapped)
    archives  tar and zip archives, read in memory, never extracted
    cifar     Keras' CIFAR-10 downloader and the official batches (a restricted unpickler)
    decode    image files to one uint8 array, in worker processes when there are many
    cache     the decoded-dataset cache, and a source's fingerprint
    report    the dataset health report (counts, imbalance, skipped files, advice)
    dataset   the `Dataset` they all produce

Untrusted input is handled defensively throughout. This package does not shuffle, split off
validation data, scale pixels to floats or augment; that is the trainer's job. Importing it does
not import Keras or TensorFlow.
"""

from cnn_core.data.cifar import CIFAR10_CLASSES, CIFAR10_URL, keras_cifar10_folder
from cnn_core.data.dataset import Dataset, Progress
from cnn_core.data.sources import (
    SourceInfo,
    check_source,
    describe_source,
    inspect_source,
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
