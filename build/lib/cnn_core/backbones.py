"""The table of pretrained backbones: what each `keras.applications` network is, as plain facts.

One row per backbone (as fastai's `model_meta`): the Keras constructor, the input range it expects,
its smallest input, its output channels, its parameters, its multiply-adds as a rule of the input
size, and the file Keras downloads for its ImageNet weights. Shape inference, the builder and the
messages only look these up. Pure Python: nothing here imports Keras. The figures are Keras' own
(`include_top=False`), checked against it by tests/test_backbone.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGENET = "imagenet"  # the `weights` value that asks Keras for its ImageNet weights
WEIGHTS_SUFFIX = ".weights.h5"  # what `model.save_weights` writes and `load_weights` reads
OUTPUT_STRIDE = 32  # every backbone here halves the size five times, rounding up


@dataclass(frozen=True)
class Backbone:
    """One `keras.applications` network without its top, as the registry needs to know it."""

    name: str  # the spec's `model` value
    title: str  # as people write it
    constructor: str  # `keras.applications.<constructor>`
    preprocessing: str  # "inside" (the network scales 0..255 itself) or "caffe" (BGR minus mean)
    min_size: int  # the smallest height and width Keras accepts
    channels: int  # of the output feature map
    params: int  # all weights, BatchNormalization statistics included
    frozen_params: int  # of them, those training never changes (BatchNormalization statistics)
    # Multiply-adds: per output pixel at each halving (1/2, 1/4, ... 1/32 of the input), and a
    # constant part for the 1x1 maps of squeeze-and-excitation, which do not grow with the input.
    macs_per_pixel: tuple[int, int, int, int, int]
    macs_fixed: int
    # Values its layers hold inside per image at 224x224 (for the memory estimate), the output's
    # own not included; other sizes scale it by area: an estimate, 0.83 to 0.99 of Keras' count
    # at 32x32 and 75x47 (its padding layers do not scale), checked within 25% by the tests.
    values_at_224: int
    weights_url: str  # where Keras downloads the ImageNet weights without the top from
    weights_hash: str  # their MD5, as keras.applications checks it
    # Keras' EfficientNet divides its normalised input once more by the square root of these
    # when it loads ImageNet weights (a layer it adds only then); folded into its Normalization's
    # variance here, so that the network is the same whatever its weights (see pretrained.py).
    imagenet_std: tuple[float, float, float] | None = None

    @property
    def keras_options(self) -> dict[str, bool]:
        """The keywords its constructor is given besides the input shape, weights and name."""
        options = {"include_top": False}
        if self.constructor.startswith("MobileNetV3"):
            options["include_preprocessing"] = True  # why: it then takes 0..255, as EfficientNet
        return options

    @property
    def weights_file(self) -> str:
        return self.weights_url.rsplit("/", 1)[1]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return (-(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE))

    def inner_values(self, height: int, width: int) -> int:
        return round(self.values_at_224 * height * width / (224 * 224))

    def macs(self, height: int, width: int) -> int:
        """Exact multiply-adds of the convolutions at this input size (each halving rounds up
        as Keras' padding does, so every convolution at halving k sees ceil(H/2^k) rows)."""
        total = self.macs_fixed
        for k, per_pixel in enumerate(self.macs_per_pixel, start=1):
            total += per_pixel * math.ceil(height / 2**k) * math.ceil(width / 2**k)
        return total


_MOBILENET = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "mobilenet_v3_small",
            "MobileNetV3-Small",
            "MobileNetV3Small",
            "inside",
            32,
            576,
            939_120,
            12_112,
            (432, 1552, 9696, 101_448, 340_128),
            458_752,
            5_176_832,
            _MOBILENET + "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
            "d3e8ec802a04aa4fc771ee12a9a9b836",
        ),
        Backbone(
            "mobilenet_v3_large",
            "MobileNetV3-Large",
            "MobileNetV3Large",
            "inside",
            32,
            960,
            2_996_352,
            24_400,
            (1856, 7944, 39_480, 445_672, 940_320),
            1_507_200,
            15_226_336,
            _MOBILENET + "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
            "07fb09a5933dd0c8eaafa16978110389",
        ),
        Backbone(
            "efficientnet_b0",
            "EfficientNet-B0",
            "EfficientNetB0",
            "inside",
            32,
            1280,
            4_049_571,
            42_023,  # BatchNormalization statistics and the input Normalization's mean and variance
            (3200, 14_832, 44_160, 697_680, 2_569_120),
            627_200,
            24_900_287,
            "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
            "50bc09e76180e00e4465e1a485ddc09d",
            imagenet_std=(0.229, 0.224, 0.225),
        ),
        Backbone(
            "resnet50",
            "ResNet50",
            "ResNet50",
            "caffe",
            32,
            2048,
            23_587_712,
            53_120,
            (9408, 212_992, 1_212_416, 7_077_888, 14_942_208),
            0,
            36_866_284,
            "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "4d473c1dd8becc155b73f8504c6f6626",
        ),
    )
}

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.imagenet_utils, mode "caffe"

# BatchNormalization's moving statistics in a network trained from random weights: Keras'
# applications use 0.999 (for ImageNet-length training), which after a few thousand steps still
# holds mostly the initial statistics, so the model predicted one class in inference mode (10.0%
# on CIFAR-10 after 3 epochs while training accuracy was 33%: bench.transfer). 0.9 follows them.
FRESH_MOMENTUM = 0.9


def missing_weights_message(where: str, backbone: Backbone) -> str:
    """What to do when Keras cannot download the ImageNet weights (no network)."""
    return (
        f"{where}: the ImageNet weights of {backbone.title} could not be downloaded (no network?); "
        f"fetch {backbone.weights_file} from {backbone.weights_url} on a machine that has one and "
        "put it in ~/.keras/models (or $KERAS_HOME/models), or give the path of a "
        f'{WEIGHTS_SUFFIX} file as "weights", or use null weights (random initialisation)'
    )
