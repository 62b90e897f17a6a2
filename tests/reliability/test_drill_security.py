"""Drill 6: security. Run names that try to leave the runs root (relative, absolute, a symbolic
link, a null byte, a name too long for the file system) through the API and the pages' `?run=`;
a model file with a Lambda layer; pickles; the dashboard's server settings; dependency floors.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from support import CLASSES, TINY, open_page

from cnn_core.predict import load_run_model
from cnn_core.runs import MODEL, RunError, list_runs, open_run, runs_root
from cnn_core.settings import DEFAULT_MAX_DATASET_UPLOAD_MB, PHOTO_UPLOAD_MB
from reliability.kit import make_model_run, messages

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_NAMES = ("../../etc", "/etc", "..", ".", "a/../../etc", "run\x00name", "x" * 5000)


@pytest.fixture
def outside_run(tmp_path: Path):
    """A complete run outside the runs root, and a symbolic link to it inside the root."""
    run = make_model_run(tmp_path / "elsewhere")
    runs_root().mkdir(parents=True, exist_ok=True)
    (runs_root() / "linked").symlink_to(run.path, target_is_directory=True)
    return run


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_open_run_refuses_names_that_leave_the_root(name: str):
    with pytest.raises(RunError) as caught:
        open_run(name)
    assert "\n" not in str(caught.value)


def test_absolute_paths_and_symlinks_out_of_the_root_are_refused(outside_run):
    with pytest.raises(RunError, match="not a run in the runs folder"):
        open_run(outside_run.path)  # a real run, but not in this root
    with pytest.raises(RunError, match="not a run in the runs folder"):
        open_run("linked")
    with pytest.raises(RunError, match="not a run in the runs folder"):
        open_run(runs_root() / "linked")
    assert list_runs() == []  # the link is not listed either


@pytest.mark.parametrize("page", ["train", "evaluate", "predict", "runs"])
def test_hostile_run_in_the_address_is_refused_by_every_page(page: str, outside_run):
    for name in ("../../etc", "/etc", "run\x00name", "x" * 5000, "linked", str(outside_run.path)):
        at = open_page(page, run=name)
        shown = " ".join(messages(at))
        if page == "runs":  # it does not read ?run=, and lists no run: the link is not one
            assert "No runs yet" in shown
        else:
            assert "not a run" in shown or "no run" in shown, (name[:20], shown)
        assert all(not box.options for box in at.selectbox if box.key == f"{page}_run")


def test_a_model_with_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path: Path):
    import keras

    marker = tmp_path / "lambda-ran"

    def touch(t, path=str(marker)):  # a side effect that shows the function ran
        open(path, "w").close()
        return t

    run = make_model_run(tmp_path / "runs")
    inputs = keras.Input(TINY.input_shape)
    x = keras.layers.Lambda(touch)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    keras.Model(inputs, outputs).save(run.file(MODEL))
    marker.unlink()  # building the model above called it once
    with pytest.raises(RunError, match=r"model\.keras cannot be loaded") as caught:
        load_run_model(run)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_no_unrestricted_unpickling_or_unsafe_loading_in_the_engine():
    """Only data/cifar.py unpickles, and only through its allow-listed `_ArrayUnpickler`."""
    banned = re.compile(
        r"pickle\.loads?\(|pickle\.Unpickler\(|allow_pickle\s*=\s*True|safe_mode\s*=\s*False"
        r"|\bmarshal\.|\bshelve\.|\bjoblib\.|torch\.load\(|\beval\(|\bexec\("
    )
    found = []
    for path in sorted((ROOT / "cnn_core").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if banned.search(line):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []
    cifar = (ROOT / "cnn_core" / "data" / "cifar.py").read_text(encoding="utf-8")
    assert "class _ArrayUnpickler(pickle.Unpickler)" in cifar
    assert "def find_class" in cifar
    loaders = "".join((ROOT / "cnn_core" / n).read_text() for n in ("predict.py", "gradcam.py"))
    assert "safe_mode=True" in loaders


def test_the_restricted_unpickler_refuses_code(tmp_path: Path):
    import pickle

    from cnn_core.data.cifar import unpickle_arrays
    from cnn_core.errors import DataError

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    with pytest.raises(DataError):
        unpickle_arrays(pickle.dumps({b"data": Evil()}), label="data_batch_1")
    assert not (tmp_path / "pwned").exists()


def test_dashboard_server_settings_keep_their_protections():
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert settings["server"]["enableXsrfProtection"] is True
    # The server's cap is a dataset archive's (the Train page); photos keep their own 10 MB.
    assert settings["server"]["maxUploadSize"] == DEFAULT_MAX_DATASET_UPLOAD_MB
    assert PHOTO_UPLOAD_MB == 10
    assert settings["client"]["showErrorDetails"] == "none"  # no tracebacks in the browser


def test_dependency_floors_exclude_releases_with_known_advisories():
    floors = {  # (the first release without the advisories we know of, the last one with)
        "keras": ("3.15.1", "3.15.0"),  # safe_mode bypasses when loading .keras files
        "pillow": ("13.0", "12.3"),  # the advisories against 12.3 (RELIABILITY.md, section 7)
        "tensorflow": ("2.21", "2.20"),  # CVE-2026-2492
        "streamlit": ("1.54.0", "1.53.1"),  # CVE-2026-33682 (< 1.54.0), CVE-2025-1684 (< 1.43.2)
    }
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = {
        req.name.lower(): req
        for req in (Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip())
    }
    for name, (floor, last_bad) in floors.items():
        allowed = requirements[name].specifier
        assert Version(last_bad) not in allowed, name
        assert Version(floor) in allowed, name
        assert Version(version(name)) in allowed, name  # and what is installed meets it
