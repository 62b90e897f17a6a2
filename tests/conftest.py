"""Shared test set-up: quiet TensorFlow, keep every test's caches and runs in tmp_path, and the
fixtures built on `support` (the helpers that tests and benchmarks share)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter hides failures
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads or writes the user's cache or runs folder, or sees their own CNN_CORE_*
    settings."""
    for name in [name for name in os.environ if name.startswith("CNN_CORE_")]:
        monkeypatch.delenv(name)
    base = tmp_path_factory.mktemp("cnn_core_home")
    monkeypatch.setenv("CNN_CORE_CACHE", str(base / "cache"))
    monkeypatch.setenv("CNN_CORE_RUNS", str(base / "runs"))


@pytest.fixture(autouse=True)
def _no_network_checks(monkeypatch: pytest.MonkeyPatch):
    """No test asks the network whether ImageNet weights can be downloaded: unreachable, unless
    a test says otherwise."""
    monkeypatch.setattr("cnn_core.imagenet.url_reachable", lambda url, **_: False)


@pytest.fixture
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache at tmp_path/cache, for tests that look into it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNN_CORE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; the browser tests skip without it, except in CI, where they must run."""
    from support import chromium_path

    path = chromium_path()
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    return path
