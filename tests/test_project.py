"""The project's promises about itself: README and CI agree, light modules stay light."""

from __future__ import annotations

import re
from pathlib import Path

from support import imported_frameworks

from cnn_core.config import config_from_dict
from cnn_core.presets import list_presets
from cnn_core.shapes import analyze

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")]
    assert len(commands) == 1
    assert f"```bash\n{commands[0]}\n```" in readme
    setup = (
        "pip install -e . && CNN_CORE_DATA=../shared/data/cifar10-jpeg.tar.gz streamlit run app.py"
    )
    first_block = readme.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert first_block == setup  # the shipped data: what a new user reads and runs first


def test_light_modules_do_not_import_keras_or_tensorflow():
    """The Build page and `validate` must stay instant: no Keras behind spec and shapes."""
    light = ("shapes", "spec", "presets", "export", "cli", "datasets", "images")
    frameworks = ("keras", "tensorflow", "jax", "torch", "streamlit")
    modules = [f"cnn_core.{name}" for name in light]
    assert imported_frameworks(*modules, frameworks=frameworks) == []


def test_presets_are_valid_and_carry_known_config_keys():
    presets = list_presets()
    assert presets[0].spec.name == "Tutorial CNN"
    assert analyze(presets[0].spec).total_params == 319_178
    for preset in presets:
        assert analyze(preset.spec).valid, preset.id
        config_from_dict(preset.config, source=preset.id)  # refuses an unknown or bad key
        assert preset.spec.description


def test_core_never_imports_streamlit():
    for path in (ROOT / "cnn_core").rglob("*.py"):
        assert "streamlit" not in path.read_text(encoding="utf-8"), path.name


def test_readme_says_how_to_install_each_backend_and_what_it_supports():
    from cnn_core.backends import PACKAGES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## GPUs and Keras backends", 1)[1].split("\n## ", 1)[0]
    for backend, (package, _) in PACKAGES.items():
        assert f"`{backend}`" in section and f"pip install {package}" in readme, backend
    assert "KERAS_BACKEND" in section and "Grad-CAM" in section
    assert "tensorflow[and-cuda]" in section and "jax[cuda12]" in section


def test_readme_screenshots_exist_and_tests_never_write_them():
    """They show a real CIFAR-10 run (python -m bench.screenshots), not the tests' noise."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"\]\((docs/screenshots/[\w.-]+\.png)\)", readme)
    assert len(shown) >= 6 and all((ROOT / path).is_file() for path in shown), shown
    assert "python -m bench.screenshots" in readme
    for test in ROOT.glob("tests/**/test_browser*.py"):
        assert "docs/screenshots" not in test.read_text(encoding="utf-8"), test.name
        assert '"docs"' not in test.read_text(encoding="utf-8"), test.name


def test_every_cnn_core_setting_is_read_in_settings():
    """Each CNN_CORE_* variable has one reader, cnn_core/settings.py (issue 14, point 8)."""
    readers = []
    for folder in ("cnn_core", "pages", "dashboard"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "settings.py" and path.parent.name == "cnn_core":
                continue
            text = path.read_text(encoding="utf-8")
            if re.search(r"(environ(\.get)?\(|environ\[|getenv\()\s*[\"']CNN_CORE_", text):
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []


# Each shared helper has one home, tests/support.py: a copy elsewhere in tests/ or bench/ is a
# second place to change (issue 14, point 7). The patterns catch the copies as they were written.
KIT_COPIES = {
    "a free-port search": r"\bsocket\.socket\(",
    "a Streamlit server launch": r'"streamlit",\s*"run"',
    "a Chromium launch": r"\.chromium\.launch\(",
    "a wait helper": r"^def (wait_until|wait_for|wait_for_health|free_port)\(",
    "the tiny network": r'LayerSpec\(\s*"Conv2D", \{"filters": 4, "kernel_size": 3',
    "a PNG chunk writer": r"^def png_chunk\(",
}


def test_the_helpers_tests_and_benchmarks_share_live_only_in_support():
    support = ROOT / "tests" / "support.py"
    for what, pattern in KIT_COPIES.items():
        assert re.search(pattern, support.read_text(encoding="utf-8"), re.M), what
        copies = [
            str(path.relative_to(ROOT))
            for folder in ("tests", "bench")
            for path in sorted((ROOT / folder).rglob("*.py"))
            if path != support and re.search(pattern, path.read_text(encoding="utf-8"), re.M)
        ]
        assert not copies, f"{what} outside tests/support.py: {copies}"


def test_the_test_kit_is_light_and_importable_as_the_benchmarks_import_it():
    heavy = ("keras", "tensorflow", "jax", "torch", "streamlit", "playwright")
    assert imported_frameworks("tests.support", frameworks=heavy) == []


def test_the_package_ships_every_sub_package():
    """A wheel (pip install . without -e) must hold cnn_core.training, cnn_core.data and the
    presets: the packaging finds every package under cnn_core, not a list that can fall behind."""
    import tomllib

    from setuptools import find_packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(str(ROOT), include=include))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "cnn_core").rglob("__init__.py")
    }
    assert on_disk <= found and {"cnn_core.training", "cnn_core.data"} <= found
