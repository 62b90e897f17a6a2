"""Drills: a dashboard nobody else can reach by default, and the shared mode's settings
(issue 13, part 1). The sign-in itself is driven in Chromium by test_browser_access.py."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import pytest

from cnn_core import settings
from cnn_core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_listens_on_loopback_only_by_default() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["enableXsrfProtection"] is True


def test_shared_mode_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_CORE_SHARED", raising=False)
    assert settings.shared_mode() is False
    for value, expected in (("1", True), ("yes", True), ("0", False), ("off", False)):
        monkeypatch.setenv("CNN_CORE_SHARED", value)
        assert settings.shared_mode() is expected
    monkeypatch.setenv("CNN_CORE_SHARED", "maybe")
    with pytest.raises(UserError, match="CNN_CORE_SHARED is 'maybe'"):
        settings.shared_mode()


def test_the_allowed_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_CORE_ALLOWED_HOSTS", raising=False)
    local = settings.allowed_hosts()
    assert {"localhost", "127.0.0.1", "::1", socket.gethostname().lower()} <= set(local)
    assert "evil.example" not in local
    monkeypatch.setenv("CNN_CORE_ALLOWED_HOSTS", " GPU.Example.edu, [fd00::1] ,")
    assert {"gpu.example.edu", "fd00::1"} <= set(settings.allowed_hosts())
