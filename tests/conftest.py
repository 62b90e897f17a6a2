"""Shared test set-up: quiet TensorFlow, and keep every test's caches and runs in tmp_path."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter hides failures
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads or writes the user's cache or runs folder."""
    base = tmp_path_factory.mktemp("cnn_core_home")
    monkeypatch.setenv("CNN_CORE_CACHE", str(base / "cache"))
    monkeypatch.setenv("CNN_CORE_RUNS", str(base / "runs"))
    monkeypatch.delenv("CNN_CORE_DATA", raising=False)
