"""Train: pick an architecture, a dataset and the settings, start a run, and watch it live.

Training runs in its own process; this page only reads the run directory (every 1.5 s, from a
fragment), so a refresh, a second tab or a shared link (?run=name) shows the same run.
"""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from cnn_core import access, api, devices, imagenet, settings
from cnn_core.advice import overfitting_advice
from cnn_core.backbones import Backbone
from cnn_core.backends import keras_backend
from cnn_core.config import (
    TrainConfig,
    config_from_dict,
    fine_tune_refusal,
    fit_batch,
    parse_config,
    setting_named,
    small_image_refusal,
    unusable_settings,
)
from cnn_core.data.report import DatasetReport, check_dataset
from cnn_core.datasets import SourceInfo, inspect_source
from cnn_core.errors import UserError
from cnn_core.imagenet import missing_weights, weights_path
from cnn_core.presets import list_presets, mark_modified
from cnn_core.progress import placement_text, progress_view
from cnn_core.runs import Progress, Run, RunError, RunStatus, open_run
from cnn_core.shapes import analyze
from cnn_core.spec import parse_spec
from cnn_core.uploads import save_upload
from dashboard.access import who
from dashboard.charts import curve_figure, dataset_report_ui, latest_rows
from dashboard.lr_finder import OPEN_KEY, lr_finder_ui
from dashboard.routing import ensure_routed
from dashboard.settings_form import settings_form_ui, widget_key
from dashboard.state import draft_ui, fingerprint, set_draft
from dashboard.text import STATE_ICONS, plain, show_error

ensure_routed()  # first: even a fresh server's first request goes through app.py

st.title("Train")
draft = draft_ui()
presets = {p.id: p for p in list_presets()}
TRANSFER = "transfer_mobilenet_v3_small"  # the default for a user's own photos, with weights


# --- the live view of one run -----------------------------------------------------------------


@st.fragment(run_every=1.5)
def live_run_ui(name: str) -> None:
    user = who()
    try:
        run = open_run(name)
        access.require(user, run, "open")
    except (RunError, access.AccessError) as exc:
        # why: on a shared server, the same words whether someone else's run exists or not
        hidden = access.AccessError(f"run {name} is not one of your runs.")
        show_error(exc if user.unrestricted else hidden)
        return
    status, history, progress = run.status(), run.history(), run.progress()
    icon = STATE_ICONS.get(status.state, "")
    st.subheader(f"{icon} {plain(run.name)}")
    cols = st.columns(4)
    cols[0].metric("State", status.state)
    cols[1].metric("Epochs", f"{status.epochs_completed}/{status.epochs_target}")
    best = status.best_val_accuracy
    cols[2].metric("Best validation accuracy", f"{best:.2%}" if best is not None else "-")
    last_lr = history[-1].get("lr") if history else None
    cols[3].metric("Learning rate", f"{last_lr:.2e}" if last_lr else "-")
    where = placement_text(status)
    if where:
        st.caption(f"Trained {plain(where)}")
    if status.not_learning:
        st.warning(plain(status.not_learning), icon=":material/warning:")
        if st.button(
            "Find a learning rate for this run", key="not_learning_find", icon=":material/search:"
        ):
            find_lr_for(run)  # why not on_click: a callback cannot leave the run's page
            st.query_params.pop("run", None)
            st.rerun()
    if status.error:
        st.error(plain(status.error), icon=":material/error:")
    for note in status.notes:
        st.info(plain(note), icon=":material/info:")

    _progress_ui(status, progress)
    _controls_ui(run, status, user)
    _curves_ui(run, status, history)


def _progress_ui(status: RunStatus, progress: Progress) -> None:
    """Where a queued or training run is: waiting, or epoch, batch, speed and time left."""
    view = progress_view(status, progress)
    if view.waiting:
        st.info(view.waiting, icon=":material/schedule:")
    elif view.fraction is not None:
        st.progress(view.fraction, text=view.text)


def _controls_ui(run: Run, status: RunStatus, user: access.Principal) -> None:
    """Stop a live run; resume or extend a finished one; open it in Evaluate."""
    buttons = st.columns(4)
    if status.active:
        if buttons[0].button("Stop", key="stop_run", icon=":material/stop:"):
            try:
                api.request_stop(run)
                access.audit(user, "stop", run.name)
            except UserError as exc:  # e.g. a read-only run folder
                show_error(exc)
            else:
                st.toast("Stop requested: it stops within one batch and keeps the model.")
    else:
        left = status.epochs_target - status.epochs_completed
        if left > 0 and buttons[0].button(
            f"Resume ({left} epochs left)", key="resume_run", icon=":material/play_arrow:"
        ):
            _resume(run, None)
        more = buttons[1].number_input("More epochs", 1, 1000, 5, key="more_epochs")
        if buttons[2].button(f"Train {more} more", key="more_run", icon=":material/add:"):
            _resume(run, int(more))
    if run.has_model():
        buttons[3].page_link(
            "pages/evaluate.py",
            label="Evaluate",
            icon=":material/analytics:",
            query_params={"run": run.name},
        )


def _curves_ui(run: Run, status: RunStatus, history: list) -> None:
    """The accuracy and loss curves, overfitting advice and the latest epochs' table."""
    if history or status.active:
        # Drawn (empty) while the first epoch trains, so the browser has loaded the chart code
        # before the first point comes: loading it at that moment delayed the point by seconds.
        charts = st.columns(2)
        charts[0].plotly_chart(
            curve_figure({run.name: history}, "accuracy", title="Accuracy"), key="acc_chart"
        )
        charts[1].plotly_chart(
            curve_figure({run.name: history}, "loss", title="Loss"), key="loss_chart"
        )
    if len({row.get("lr") for row in history}) > 1:  # a schedule, or fine-tuning's two phases
        st.plotly_chart(
            curve_figure({run.name: history}, "lr", title="Learning rate"), key="lr_chart"
        )
    if history:
        if advice := overfitting_advice(history):
            st.warning(advice, icon=":material/warning:")
        table = pd.DataFrame(latest_rows(history))
        table["epoch"] = table["epoch"] + 1
        st.dataframe(table, hide_index=True, key="epoch_table")
        if len(table) < len(history):
            st.caption(f"The latest {len(table):,} of {len(history):,} epochs.")
    elif status.active:
        st.caption("The curves grow from the end of the first epoch.")


@st.cache_data(max_entries=4, show_spinner="Reading the dataset (decoded once, then cached)…")
def dataset_check(
    source: str,
    size: tuple[int, int],
    channels: int,
    fingerprint: str | None,
    test_split: float,
) -> tuple[DatasetReport, list]:
    """The health report and sample images; `fingerprint` makes a changed dataset read again."""
    return check_dataset(source, image_size=size, channels=channels, test_split=test_split)


def source_note_ui(info: SourceInfo) -> None:
    """Where the training data will come from, whether it is here already, and what to do
    without a network: said before Start, not after a failed first run."""
    if info.problem:
        st.error(plain(info.problem), icon=":material/error:")
        return
    if info.needs_network:
        st.warning(
            f"{plain(info.description)}. Without a network: download cifar-10-python.tar.gz on a "
            "machine that has one, copy it to this machine and enter its path above; or enter a "
            "folder, .zip or .tar.gz of your own images (one folder of images per class).",
            icon=":material/cloud_download:",
        )
        return
    if info.source == "cifar10":
        st.caption(f"{plain(info.description)}: no network needed.")
        return
    where = "Read from this machine: no network needed. "
    if info.cached:
        where += "Already decoded at this image size: loads in about a second."
    elif info.cached is False:
        where += "Decoded when training starts, then cached for the next run."
    st.caption(f"{plain(info.description)}. {where}".strip())


@st.cache_data(ttl=3600, show_spinner=False)
def weights_reachable(url: str) -> bool:
    """Whether the weights' URL answers: asked once an hour, for at most two seconds, not at
    every rerun."""
    return imagenet.url_reachable(url)


def default_model() -> tuple[str | None, list[Backbone]]:
    """The model this session starts from: the draft, or for a user's own photos the Transfer
    preset where its ImageNet weights can be had (else the draft, and the backbones whose weights
    are missing). None once the user has chosen a model: an edited draft is a choice too."""
    if st.session_state.get("arch_chosen") or draft != presets["tutorial_cnn"].spec:
        return None, []
    if not own_images(planned_source()):
        return "draft", []
    missing = missing_weights(presets[TRANSFER].spec, reachable=weights_reachable)
    return ("draft", missing) if missing else (TRANSFER, [])


@st.cache_data(ttl=10, show_spinner=False)
def own_images(source: str) -> bool:
    """Whether `source` is a user's own image folders, looked at most every 10 s (it is looked
    at again below, with the input size, for what the Dataset section says)."""
    return inspect_source(source).own_images


def planned_source() -> str:
    """The dataset source the Dataset section (drawn below) held at the end of the last run."""
    kept = st.session_state.get("dataset_kept")  # (file id, path, problem) of an upload
    if st.session_state.get("dataset_upload") is not None and kept:
        return kept[1]
    return st.session_state.get("data_source", settings.data_source())


def use_settings_of(default: str) -> None:
    """The settings of a new default model: its recommended ones, unless the user loaded some."""
    st.session_state.arch_default = default
    if not st.session_state.get("config_chosen"):
        preset = presets.get(default)
        base = config_from_dict(preset.config, source=default) if preset else TrainConfig()
        st.session_state.config_base = base
        st.session_state.config_version = st.session_state.get("config_version", 0) + 1


def change_settings(config: TrainConfig, **changes: object) -> None:
    """Use `config` with `changes` (the rest as it was): the refusals' one-click fixes."""
    st.session_state.config_base = replace(config, **changes)
    st.session_state.config_version = st.session_state.get("config_version", 0) + 1
    st.session_state.config_chosen = True


def refusal_ui(message: str, fix: tuple[str, str], config: TrainConfig, **changes: object) -> None:
    """Settings the chosen model cannot use, refused (never dropped): why, and a button
    (`fix`: its label and key) that uses `config` with `changes`."""
    st.error(plain(message), icon=":material/error:")
    label, key = fix
    st.button(
        label,
        key=key,
        icon=":material/block:",
        on_click=change_settings,
        args=(config,),
        kwargs=changes,
    )


def find_lr_for(run: Run) -> None:
    """Set up a new run as `run` was (its spec as the draft, its settings and data) with the
    learning-rate finder open: what the not-learning warning offers."""
    try:
        spec, config, source = run.spec(), run.config(), run.dataset().get("source")
    except UserError:
        return  # a damaged run: its own message is on the page
    set_draft(spec)
    st.session_state.update(arch_choice="draft", arch_chosen=True, config_base=config)
    st.session_state.config_version = st.session_state.get("config_version", 0) + 1
    st.session_state.config_chosen = True
    if source:
        st.session_state.data_source = str(source)
    st.session_state[OPEN_KEY] = True  # the finder's section opens


def machine_gpus() -> tuple:
    """This machine's GPUs (nvidia-smi, at most every 30 s: it takes a moment to answer)."""
    try:
        return _gpus(settings.gpu_inventory())
    except UserError:  # a damaged fake inventory: Start says so, with its name
        return ()


@st.cache_data(ttl=30, show_spinner=False)
def _gpus(inventory: object) -> tuple:  # keyed by the inventory setting, so a new one is read
    return devices.gpus()


def fit_batch_ui(values: dict, fitted: int) -> None:
    st.button(
        f"Use batch size {fitted}",
        key="fit_batch",
        icon=":material/build:",
        on_click=use_settings,
        args=({**values, "batch_size": fitted},),
    )


def use_settings(values: dict) -> None:
    """A one-click fix: the form's settings with one changed (checked again as they load)."""
    try:
        st.session_state.config_base = config_from_dict(values, source="the settings")
    except UserError:
        return  # another setting is wrong too: its message stays on the page
    st.session_state.config_version = st.session_state.get("config_version", 0) + 1
    st.session_state.config_chosen = True


def shown_path(path: Path) -> str:
    """`path` with the home folder written ~."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def _resume(run: Run, more: int | None) -> None:
    user = who()
    try:
        access.require(user, run, "resume")
        api.resume_run(run, more_epochs=more)
        access.audit(user, "resume", run.name, more_epochs=more)
    except UserError as exc:
        show_error(exc)


current = st.query_params.get("run")
if current:
    live_run_ui(current)
    if st.button("Set up a new run", key="new_run", icon=":material/add_circle:"):
        del st.query_params["run"]
        st.rerun()
    st.stop()


# --- setting up a new run ---------------------------------------------------------------------

st.subheader("Architecture")
default, missing = default_model()
if default is not None:  # no model chosen yet: the default, also back from another page
    st.session_state.arch_choice = default
    if st.session_state.get("arch_default", "draft") != default:  # the source changed it
        use_settings_of(default)
choices = (
    {"draft": f"Your draft: {plain(draft.name)}"}
    | {pid: f"Preset: {plain(p.spec.name)}" for pid, p in presets.items()}
    | {"upload": "A saved spec file"}
)
choice = st.radio(
    "Architecture",
    list(choices),
    format_func=choices.get,
    key="arch_choice",
    label_visibility="collapsed",
    on_change=lambda: st.session_state.update(arch_chosen=True),  # a choice the default keeps
)
spec = draft if choice == "draft" else presets[choice].spec if choice in presets else None
if choice == "upload":
    upload = st.file_uploader(
        "Spec file (.json)",
        type=["json"],
        key="train_spec_upload",
        max_upload_size=settings.PHOTO_UPLOAD_MB,  # the server's cap is a dataset archive's
    )
    if upload is not None:
        try:
            spec = parse_spec(upload.getvalue(), source=upload.name)
        except UserError as exc:
            show_error(exc)
if spec is not None:
    analysis = analyze(spec)
    st.caption(
        f"{plain(spec.name)}: {len(spec.layers)} layers, {analysis.total_params:,} parameters, "
        f"{analysis.total_macs / 1e6:,.1f} M multiply-adds per image."
    )
    for problem in analysis.problems:
        st.error(plain(problem.message), icon=":material/error:")
for backbone in missing:  # no network here, and the weights not in Keras' cache
    folder = shown_path(weights_path(backbone).parent)
    st.caption(
        plain(
            f"With {backbone.weights_file} (ImageNet weights) in {folder}, "
            f'"{presets[TRANSFER].spec.name}" would be the default here: it does better on photos.'
        )
    )

st.subheader("Dataset")
source = st.text_input(
    "Dataset source",
    value=settings.data_source(),
    key="data_source",
    disabled=st.session_state.get("dataset_upload") is not None,  # the upload below is used
    help="On the machine that runs this dashboard: cifar10 (downloads once), the official "
    "cifar-10-python.tar.gz, or a folder or .zip/.tar.gz with one folder of images per class "
    "(inside train/ and test/ folders, or not: then a test split is made). Files on your own "
    "computer: upload an archive below.",
)
try:  # the server refuses bigger uploads whatever the setting says
    upload_mb = min(settings.max_dataset_upload_mb(), st.get_option("server.maxUploadSize"))
except UserError as exc:
    show_error(exc)
    upload_mb = None
archive = st.file_uploader(
    "…or upload a dataset archive from your computer (.zip, .tar, .tar.gz)",
    type=["zip", "tar", "gz", "tgz"],
    key="dataset_upload",
    max_upload_size=upload_mb,
    disabled=upload_mb is None,
    help="The same layouts as a folder. It is kept on the server (one copy per "
    "content), so that the run, and its evaluation later, read it from there.",
)
upload_problem = None
if archive is not None:
    kept = st.session_state.get("dataset_kept")  # (file id, path, problem): copied only once
    if kept is None or kept[0] != archive.file_id:
        try:
            with st.spinner(plain(f"Saving and reading through {archive.name}…")):  # seconds per GB
                saved = save_upload(
                    archive,
                    name=archive.name,
                    max_bytes=upload_mb * 2**20,
                    folder=access.uploads_for(who()),  # a user's own folder on a shared server
                )
            kept = (archive.file_id, str(saved.path), None)
        except UserError as exc:
            kept = (archive.file_id, "", str(exc))
        st.session_state.dataset_kept = kept
    _, source, upload_problem = kept
    size = f"{archive.size / 2**20:,.1f} MB" if archive.size >= 2**20 else f"{archive.size:,} bytes"
    st.caption(plain(f"Uploaded: {archive.name} ({size}); the path above is not used."))
try:  # on a shared server: only the configured dataset folders and the user's own uploads
    access.check_data_source(who(), source)
except access.AccessError as exc:
    upload_problem = str(exc)
source_info = (
    SourceInfo("", f"{archive.name if archive else source} (refused)", problem=upload_problem)
    if upload_problem
    else inspect_source(
        source,
        image_size=spec.input_shape[:2] if spec is not None else None,
        channels=spec.input_shape[2] if spec is not None else 3,
    )
)
source_note_ui(source_info)
if source_info.problem is None and spec is not None:
    # Closed, it reads nothing; opened, it decodes the images once (then cached) and reports.
    health = st.expander(
        "Check the dataset: images per class, skipped files, advice",
        icon=":material/fact_check:",
        key="data_report",
        on_change="rerun",
    )
    if health.open:
        with health:
            try:
                # the test split as the settings below have it now (they are drawn after this)
                settings_version = st.session_state.get("config_version", 0)
                test_split = st.session_state.get(
                    widget_key(setting_named("test_split"), settings_version),
                    st.session_state.get("config_base", TrainConfig()).test_split,
                )
                report, samples = dataset_check(
                    source_info.source,
                    spec.input_shape[:2],
                    spec.input_shape[2],
                    fingerprint(source_info.source),
                    float(test_split),
                )
            except UserError as exc:
                show_error(exc)
            else:
                dataset_report_ui(report, samples)
                larger = report.suggested_size
                if larger and choice == "draft" and spec.input_shape[:2] != larger:
                    st.button(
                        f"Use a {larger[0]}x{larger[1]} input in the draft",
                        key="use_larger_input",
                        icon=":material/zoom_in:",
                        on_click=set_draft,
                        args=(
                            mark_modified(
                                spec, replace(spec, input_shape=(*larger, spec.input_shape[2]))
                            ),
                        ),
                        help="The Build page shows what it does to every layer's shape and the "
                        "parameter count.",
                    )

st.subheader("Settings")
version = st.session_state.get("config_version", 0)
base = st.session_state.get("config_base", TrainConfig())
recommend = st.container(horizontal=True)  # whole labels, wrapping in a narrow window
for pid, preset in presets.items():
    if recommend.button(f"{preset.spec.name} settings", key=f"recommend_{pid}"):
        st.session_state.config_base = config_from_dict(preset.config, source=pid)
        st.session_state.config_version = version + 1
        st.session_state.config_chosen = True  # the default model no longer changes them
        st.rerun()
with st.expander("Load settings from a file (.json)"):
    config_upload = st.file_uploader(
        "Settings file (.json)",
        type=["json"],
        key="config_upload",
        label_visibility="collapsed",
        max_upload_size=settings.PHOTO_UPLOAD_MB,
    )
if config_upload is not None and st.session_state.get("config_file") != config_upload.file_id:
    st.session_state.config_file = config_upload.file_id
    try:
        st.session_state.config_base = parse_config(
            config_upload.getvalue(), source=config_upload.name
        )
        st.session_state.config_version = version + 1
        st.session_state.config_chosen = True
        st.rerun()
    except UserError as exc:
        show_error(exc)

checked = spec is not None and analyze(spec).valid  # the rules below read a checked spec
unusable = unusable_settings(spec) if checked else {}  # e.g. fine-tuning without a Backbone
values = settings_form_ui(base, version=version, backend=keras_backend(), unusable=unusable)
try:
    config = config_from_dict(values, source="the settings")
except UserError as exc:
    show_error(exc)
    config = None
    wanted, batch = values.get("devices"), values.get("batch_size")
    if isinstance(wanted, int) and isinstance(batch, int) and wanted > 0 and batch % wanted:
        fit_batch_ui(values, fit_batch(batch, wanted))  # the batch must divide by the devices
if config is not None:  # "all" GPUs of this machine must share the batch too
    misfit = devices.batch_misfit(config.devices, config.batch_size, machine_gpus())
    if misfit:
        st.error(plain(misfit[0]), icon=":material/error:")
        fit_batch_ui(values, misfit[1])
        config = None
refusal = fine_tune_refusal(spec) if checked and config and config.fine_tune else None
if refusal:  # e.g. a Transfer preset's settings, then another model: refused, never dropped
    refusal_ui(
        f"These settings fine-tune ({config.fine_tune} frozen epochs first). {refusal}",
        ("Turn fine-tuning off", "fine_tune_off"),
        config,
        fine_tune=None,
    )
small_refusal = (
    small_image_refusal(spec, config.small_image_scale)
    if checked and config and config.small_image_share
    else None
)
if small_refusal:  # e.g. Fast CPU's settings with a Flatten network: refused, never dropped
    refusal_ui(
        f"These settings train the first {config.small_image_epochs} of {config.epochs} epochs "
        f"on smaller images (small_image_share {config.small_image_share:g}). {small_refusal}",
        ("Train at full size throughout", "small_images_off"),
        config,
        small_image_share=0.0,
    )

blockers = [
    reason
    for reason, blocked in (
        ("choose an architecture", spec is None),
        ("fix the architecture's problems", spec is not None and not analyze(spec).valid),
        ("fix the settings", config is None),
        ("turn fine-tuning off or choose a Transfer preset", refusal is not None),
        ("train at full size or end the network with global pooling", small_refusal is not None),
        ("choose a dataset that can be used", source_info.problem is not None),
    )
    if blocked
]
ready = not blockers
finder_ready = checked and config is not None and source_info.problem is None
lr_finder_ui(
    spec,
    config,
    source.strip() or None,
    ready=finder_ready,
    use=lambda rate: use_settings({**values, "learning_rate": rate}),
)
if st.button(
    "Start training", type="primary", disabled=not ready, key="start", icon=":material/play_arrow:"
):
    user = who()
    try:
        access.check_quota(user)
        run = api.start_run(spec, config, data_source=source.strip() or None)
        access.record_owner(run, user)
        access.audit(user, "start", run.name)
    except UserError as exc:
        show_error(exc)
    else:
        st.query_params["run"] = run.name
        st.rerun()
if not ready:
    st.caption(f"To start training, {' and '.join(blockers)} (see above).")
