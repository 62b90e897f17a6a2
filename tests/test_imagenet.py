"""Whether a spec's ImageNet weights can be had here: cached, downloadable or missing. The
network is never asked: the check is given (`reachable`), or a local server answers it."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from cnn_core.backbones import BACKBONES
from cnn_core.imagenet import (  # url_reachable: the real one, which conftest replaces there
    Weights,
    imagenet_backbones,
    missing_weights,
    url_reachable,
    weights_availability,
    weights_path,
)
from cnn_core.presets import load_preset

SMALL = BACKBONES["mobilenet_v3_small"]


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def never(url: str) -> bool:
    raise AssertionError(f"the network was asked for {url}")


def test_cached_weights_need_no_network(keras_home):
    path = weights_path(SMALL)
    assert path == keras_home / "models" / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    assert weights_availability(SMALL, reachable=never) is Weights.CACHED
    assert missing_weights(load_preset("transfer_mobilenet_v3_small").spec, reachable=never) == []


def test_absent_weights_are_downloadable_or_missing_as_their_url_answers(keras_home):
    asked = []
    state = weights_availability(SMALL, reachable=lambda url: asked.append(url) or True)
    assert state is Weights.DOWNLOADABLE and state.available and asked == [SMALL.weights_url]
    state = weights_availability(SMALL, reachable=lambda url: False)
    assert state is Weights.MISSING and not state.available
    spec = load_preset("transfer_efficientnet_b0").spec
    assert missing_weights(spec, reachable=lambda url: False) == [BACKBONES["efficientnet_b0"]]


def test_only_backbones_with_imagenet_weights_are_asked_about():
    assert imagenet_backbones(load_preset("tutorial_cnn").spec) == []
    assert imagenet_backbones(load_preset("transfer_mobilenet_v3_small").spec) == [SMALL]
    from dataclasses import replace

    from cnn_core.spec import LayerSpec

    spec = load_preset("transfer_mobilenet_v3_small").spec
    random = replace(spec, layers=(LayerSpec("Backbone", {"weights": None}), *spec.layers[1:]))
    assert missing_weights(random, reachable=never) == []


class _Answer(http.server.BaseHTTPRequestHandler):
    delay = 0.0

    def do_HEAD(self) -> None:  # the name http.server calls
        time.sleep(self.delay)
        self.send_response(200 if self.path == "/there.h5" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    _Answer.delay = 0.0


def test_url_reachable_asks_with_a_head_request_and_a_time_limit(server):
    assert url_reachable(f"{server}/there.h5")
    assert not url_reachable(f"{server}/gone.h5")  # 404
    assert not url_reachable("http://127.0.0.1:9/closed.h5")  # nothing listens: refused
    assert not url_reachable("not a url")
    _Answer.delay = 1.5
    started = time.perf_counter()
    assert not url_reachable(f"{server}/there.h5", timeout=0.3)  # too slow: not reachable
    assert time.perf_counter() - started < 1.0


def test_the_check_imports_no_framework():
    from support import imported_frameworks

    frameworks = ("keras", "tensorflow", "jax", "torch", "streamlit")
    assert imported_frameworks("cnn_core.imagenet", frameworks=frameworks) == []
