"""Set-up for the reliability drills (tests/conftest.py already keeps runs and caches in tmp)."""

from __future__ import annotations

import gc
import sys

import pytest


@pytest.fixture(autouse=True)
def _quick_streamlit_reruns() -> None:
    """Streamlit runs a full garbage collection after every script run (runner.postScriptGC);
    once TensorFlow is loaded that scan takes ~0.3 s, which dozens of AppTest runs add up to.
    Objects that exist before a drill starts are moved out of the collector's way; nothing the
    drill itself creates is affected."""
    if "keras" in sys.modules:
        gc.freeze()
