"""Drill: the dependency floors that exclude known advisories (issue 13, part 5).

RELIABILITY.md's "Dependency floors" table is the one list of them; this drill checks that
`requirements.txt` asks for at least each floor and that the installed packages meet it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def advisory_floors() -> dict[str, Version]:
    """package -> floor, from the table under "Dependency floors" in RELIABILITY.md."""
    text = (ROOT / "RELIABILITY.md").read_text(encoding="utf-8")
    section = text.split("Dependency floors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([a-z0-9_-]+) \| ([0-9.]+) \|", section, flags=re.MULTILINE)
    return {name: Version(floor) for name, floor in rows}


def required_floors() -> dict[str, Version]:
    """package -> the lowest version requirements.txt allows (its >= bound)."""
    floors: dict[str, Version] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        lows = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
        if lows:
            floors[requirement.name.lower()] = max(lows)
    return floors


def test_the_table_lists_the_advisories_the_issue_names() -> None:
    floors = advisory_floors()
    assert floors["tensorflow"] >= Version("2.21")
    assert floors["pillow"] >= Version("13.0")
    assert {"h5py", "streamlit", "keras"} <= set(floors)


@pytest.mark.parametrize("package", sorted(advisory_floors()))
def test_requirements_ask_for_at_least_the_floor(package: str) -> None:
    required = required_floors()
    assert package in required, f"requirements.txt has no floor for {package}"
    assert required[package] >= advisory_floors()[package], (
        f"requirements.txt allows {package} {required[package]}, below the advisory floor "
        f"{advisory_floors()[package]}"
    )


@pytest.mark.parametrize("package", sorted(advisory_floors()))
def test_the_installed_version_meets_the_floor(package: str) -> None:
    installed = Version(metadata.version(package))
    assert installed >= advisory_floors()[package], f"{package} {installed} is installed"
