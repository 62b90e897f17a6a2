"""Whether the ImageNet weights a spec asks for can be had on this machine: already in Keras'
download cache (~/.keras/models), or downloadable (a HEAD request answered within two seconds).

The Train page asks this before it makes a Transfer preset the default for a user's own photos;
it is not what loads the weights (that is `pretrained.py`, through Keras' own `get_file`). Pure
Python: nothing here imports Keras. The network check is `url_reachable`, passed in as `reachable`
so that callers can cache it and tests can replace it; it never takes longer than its timeout,
a slow name lookup included.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from cnn_core.backbones import BACKBONES, IMAGENET, Backbone
from cnn_core.backends import keras_home
from cnn_core.layers import backbone_choices
from cnn_core.spec import ModelSpec

CHECK_SECONDS = 2.0  # the longest the network check may take


class Weights(StrEnum):
    """Where a backbone's ImageNet weights stand on this machine."""

    CACHED = "cached"  # in Keras' cache: no network needed
    DOWNLOADABLE = "downloadable"  # not cached, but their URL answers: Keras fetches them once
    MISSING = "missing"  # neither: the file must be fetched elsewhere

    @property
    def available(self) -> bool:
        return self is not Weights.MISSING


def weights_path(backbone: Backbone) -> Path:
    """Where Keras keeps (and looks for) the ImageNet weights file of `backbone`."""
    return keras_home() / "models" / backbone.weights_file


def url_reachable(url: str, *, timeout: float = CHECK_SECONDS) -> bool:
    """Whether a HEAD request for `url` is answered with success within `timeout` seconds.
    It runs in a thread, so that a name lookup (which ignores socket timeouts) cannot hold the
    caller longer; never raises."""
    answer: list[bool] = []

    def ask() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                answer.append(True)  # urlopen raises on an error status
        except (OSError, ValueError):  # no network, refused, HTTP error (URLError is an OSError)
            answer.append(False)

    thread = threading.Thread(target=ask, name="weights-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def weights_availability(
    backbone: Backbone, *, reachable: Callable[[str], bool] = url_reachable
) -> Weights:
    """Whether the ImageNet weights of `backbone` are cached, downloadable or missing; the
    network is asked (through `reachable(url)`) only when the file is not in the cache."""
    if weights_path(backbone).is_file():
        return Weights.CACHED
    return Weights.DOWNLOADABLE if reachable(backbone.weights_url) else Weights.MISSING


def imagenet_backbones(spec: ModelSpec) -> list[Backbone]:
    """The backbones of `spec` (one that `shapes.check_spec` accepts) with ImageNet weights."""
    chosen = backbone_choices(spec.layers)
    return [BACKBONES[model] for model, weights in chosen if weights == IMAGENET]


def missing_weights(
    spec: ModelSpec, *, reachable: Callable[[str], bool] = url_reachable
) -> list[Backbone]:
    """The backbones of `spec` whose ImageNet weights are neither cached nor downloadable."""
    return [
        backbone
        for backbone in imagenet_backbones(spec)
        if not weights_availability(backbone, reachable=reachable).available
    ]
