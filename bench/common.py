"""Helpers shared by the benchmarks: where the real data is, and how results are written."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CIFAR_JPEG = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def cifar_source() -> str:
    """The real CIFAR-10 copy beside the project (or $CNN_CORE_DATA); exit if there is none."""
    source = os.environ.get("CNN_CORE_DATA") or str(CIFAR_JPEG)
    if not Path(source).exists():
        raise SystemExit(f"benchmark needs the CIFAR-10 copy at {source} (or set CNN_CORE_DATA)")
    return source


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path
