"""Build: stack layers, see every output shape and parameter count as you go, fix problems,
export the spec or Keras code. Pure `cnn_core` (no TensorFlow), so it opens and redraws at once.

Layers move with their rows' arrow buttons or, where streamlit-sortables is installed, by
dragging them in the list under the stack.
"""

import json
from dataclasses import replace

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnn_core import settings
from cnn_core.diagram import network_dot
from cnn_core.errors import SpecError
from cnn_core.export import export_code
from cnn_core.layers import KINDS, format_shape
from cnn_core.presets import list_presets, mark_modified
from cnn_core.shapes import LayerInfo, Problem, analyze
from cnn_core.spec import LayerSpec, ModelSpec, parse_spec
from dashboard.params import layer_params_state, layer_params_ui
from dashboard.routing import ensure_routed
from dashboard.state import draft_ui, set_draft
from dashboard.text import plain

try:  # optional: drag-and-drop reordering; without it the arrow buttons reorder
    from streamlit_sortables import sort_items
except ImportError:
    sort_items = None

ensure_routed()  # first: even a fresh server's first request goes through app.py

CHANNELS = {3: "3 (colour)", 1: "1 (grayscale)"}
CELLS = [0.7, 5.2, 2.2, 1.95]  # number, layer, output shape, parameters: shares of a line
BUTTON_PX, GAP_PX = 32, 4  # the row's five icon buttons have fixed widths, so they never clip
TOOLS_PX = 5 * BUTTON_PX + 4 * GAP_PX
ORDER_STYLE = """
.sortable-container-header { font-size: 14px; margin-bottom: 4px; }
.sortable-container-body { background: none; padding: 0; min-height: 0; }
.sortable-item, .sortable-item:hover {
  background: var(--secondary-background-color); color: var(--text-color); font-size: 14px;
  border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 16px; margin: 0 6px 6px 0;
  padding: 2px 12px;
}
.sortable-item:hover { border-color: var(--primary-color); }
"""  # the drag list's chips, in the look of Streamlit's pills

spec = draft_ui()
analysis = analyze(spec)


# --- edits (callbacks, so the page redraws once with the result) ------------------------------


def bump(version: str) -> None:
    st.session_state[version] = st.session_state.get(version, 0) + 1


def edit(new_spec: ModelSpec) -> None:
    """Make `new_spec` the draft (named "<preset> (modified)" if it changes a preset's network)."""
    new_spec = mark_modified(spec, new_spec)
    if (new_spec.name, new_spec.input_shape) != (spec.name, spec.input_shape):
        # the header widgets start afresh with the new values (their keys carry this version)
        bump("header_version")
    bump("order_version")  # and so does the drag list: it keeps the order it was drawn with
    set_draft(new_spec)
    st.session_state.pop("editing", None)


def start_editing(index: int) -> None:
    st.session_state.editing = index


def apply_edit(index: int, kind: str) -> None:
    params = layer_params_state(kind, key=f"edit{index}")
    layers = list(spec.layers)
    layers[index] = LayerSpec(kind, params)
    edit(spec.with_layers(layers))


def add_layer() -> None:
    kind = st.session_state.add_kind
    params = layer_params_state(kind, key="add")
    where = st.session_state.add_where
    index = len(spec.layers) if where == "end" else int(where)
    edit(spec.insert(index, LayerSpec(kind, params)))


def row_ui(*texts: str, tools: bool = False) -> DeltaGenerator:
    """One line of the stack: its text cells share the width (two texts: the second spans the
    rest of the line), then come the row's buttons (added to the returned line when `tools`) or,
    in the other lines, the room they take."""
    line = st.container(horizontal=True, vertical_alignment="center", gap=GAP_PX, wrap=False)
    shares = CELLS if len(texts) > 2 else [CELLS[0], sum(CELLS[1:])]
    cells = line.columns(shares, gap="xsmall", vertical_alignment="center")
    for cell, text in zip(cells, texts, strict=False):
        if text:
            cell.markdown(text)
    if not tools:
        line.space(TOOLS_PX)
    return line


def params_cell(info: LayerInfo) -> str:
    """The parameter count and, beneath it, the frozen part and the multiply-adds per image."""
    notes = [f"{info.frozen:,} frozen"] if info.frozen else []
    if info.macs:
        notes.append(f"{info.macs / 1e6:,.2f} M mult-adds")
    return f"{info.params:,}" + (f"  \n:small[{' · '.join(notes)}]" if notes else "")


def problem_ui(box: DeltaGenerator, problem: Problem, *, key: str) -> None:
    """The problem's message and, where there is an obvious one, its one-click fix."""
    box.error(plain(problem.message), icon=":material/error:")
    if problem.fix:
        box.button(
            problem.fix.label,
            key=key,
            type="primary",
            on_click=edit,
            args=(problem.fix.apply(spec),),
        )


# --- sidebar: the add-layer controls (used most, so first), then the presets ------------------

with st.sidebar:
    st.header("Add a layer")
    kind_name = st.selectbox("Layer kind", list(KINDS), key="add_kind")
    st.caption(KINDS[kind_name].summary)
    layer_params_ui(kind_name, key="add")
    positions = {"end": "at the end"} | {
        str(i): f"before {i + 1}. {info.description}" for i, info in enumerate(analysis.layers[:-1])
    }
    st.selectbox("Where", list(positions), format_func=positions.get, key="add_where")
    st.button(
        f"Add {kind_name}",
        type="primary",
        on_click=add_layer,
        key="add_button",
        use_container_width=True,
    )
    st.header("Start from")
    for preset in list_presets():
        st.button(
            preset.spec.name,
            key=f"preset_{preset.id}",
            help=preset.spec.description,
            on_click=edit,
            args=(preset.spec,),
            use_container_width=True,
        )
    st.button(
        "Empty network",
        key="preset_empty",
        on_click=edit,
        args=(ModelSpec(name="My network", input_shape=spec.input_shape),),
        use_container_width=True,
    )

# --- main: the stack --------------------------------------------------------------------------

st.title("Build")
if warning := st.session_state.pop("draft_warning", None):
    st.warning(warning)
h, w, c = spec.input_shape
version = st.session_state.get("header_version", 0)
# shares that leave "3 (colour)" whole in a 1024 px window
name_col, h_col, w_col, c_col = st.columns([3, 1.1, 1.1, 1.7])
new_name = " ".join(
    name_col.text_input("Name", spec.name, max_chars=100, key=f"spec_name_{version}").split()
)
size_help = "Images are resized to this."
new_h = h_col.number_input("Input height", 1, 1024, h, help=size_help, key=f"input_h_{version}")
new_w = w_col.number_input("Input width", 1, 1024, w, help=size_help, key=f"input_w_{version}")
new_c = c_col.selectbox(
    "Channels", (3, 1), index=(3, 1).index(c), format_func=CHANNELS.get, key=f"input_c_{version}"
)
typed = replace(spec, name=new_name or spec.name, input_shape=(new_h, new_w, new_c))
if typed != spec:
    marked = mark_modified(spec, typed)
    if marked.name != typed.name:
        bump("header_version")  # the name field must show the new name
    set_draft(marked)
    st.rerun()
st.caption(
    f"{spec.num_classes} classes: the classifier head is sized to the dataset when training starts."
)

m1, m2, m3, m4 = st.columns(4)
frozen = analysis.total_frozen
m1.metric(
    "Parameters",
    f"{analysis.total_params:,}",
    help=f"{frozen:,} of them frozen: training leaves them as they are." if frozen else None,
)
m2.metric("Multiply-adds", f"{analysis.total_macs / 1e6:,.1f} M", help="Per image, one pass.")
m3.metric("Model size", f"{analysis.model_bytes / 1e6:,.2f} MB")
final = analysis.final_feature_map
m4.metric("Final feature map", format_shape(final))

row_ui("**#**", "**layer**", "**output**", "**params**")
row_ui("", f"Input &nbsp; `{format_shape((h, w, c))}` images, raw 0..255 pixels")

for info in analysis.layers[:-1]:
    i = info.index
    shape = f"`{format_shape(info.output_shape)}`" if info.output_shape else "?"
    tools = row_ui(f"**{i + 1}**", info.description, shape, params_cell(info), tools=True)
    duplicated, last = spec.insert(i + 1, spec.layers[i]), len(spec.layers) - 1
    buttons = {  # key prefix: icon, tooltip, callback, its argument, disabled
        "edit": (":material/edit:", "Edit", start_editing, i, False),
        "up": (":material/arrow_upward:", "Move up", edit, spec.move(i, -1), i == 0),
        "down": (":material/arrow_downward:", "Move down", edit, spec.move(i, 1), i == last),
        "dup": (":material/content_copy:", "Duplicate", edit, duplicated, False),
        "del": (":material/delete:", "Delete", edit, spec.delete(i), False),
    }
    for name, (icon, tooltip, callback, arg, disabled) in buttons.items():
        # Tooltips on the first row only: the icons repeat, and each tooltip doubles its button's
        # drawing (a hidden copy), a cost that would grow with every row of the table.
        tools.button(
            icon,
            key=f"{name}_{i}",
            help=tooltip if i == 0 else None,
            type="tertiary",
            width=BUTTON_PX,
            disabled=disabled,
            on_click=callback,
            args=(arg,),
        )
    for problem in analysis.problems_for(i):
        problem_ui(st.columns([0.5, 8.4])[1], problem, key=f"fix_{i}_{problem.rule}")
    if st.session_state.get("editing") == i and spec.layers[i].type in KINDS:
        with st.container(border=True):
            layer = spec.layers[i]
            st.markdown(f"**Edit layer {i + 1} ({layer.type})**")
            layer_params_ui(layer.type, key=f"edit{i}", values=layer.params)
            a, b = st.columns(2)
            a.button(
                "Apply", key=f"apply_{i}", type="primary", on_click=apply_edit, args=(i, layer.type)
            )
            b.button(
                "Cancel", key=f"cancel_{i}", on_click=st.session_state.pop, args=("editing", None)
            )

head = analysis.layers[-1]
head_shape = f"`{format_shape(head.output_shape)}`" if head.output_shape else "?"
row_ui("", f"{head.description} &nbsp; (always added)", head_shape, params_cell(head))
for problem in analysis.problems_for(None):
    problem_ui(st.container(), problem, key=f"fix_head_{problem.rule}")

if sort_items is not None and len(spec.layers) > 1:
    # Below the stack: a new list (its key changes with every edit, so that a drop is applied
    # once and the list shows the new order) is drawn a moment after the page, and must not push
    # the rows' buttons away from the pointer meanwhile.
    labels = [f"{i + 1}. {layer.type}" for i, layer in enumerate(spec.layers)]
    dropped = sort_items(
        labels,
        header="Drag to reorder the layers",
        custom_style=ORDER_STYLE,
        key=f"layer_order_{st.session_state.get('order_version', 0)}",
    )
    if dropped != labels and sorted(dropped) == sorted(labels):
        edit(spec.reorder([labels.index(label) for label in dropped]))
        st.rerun()

if analysis.valid:
    st.success("This network is ready to train.", icon=":material/check_circle:")
    st.page_link("pages/train.py", label="Train it", icon=":material/play_arrow:")
else:
    st.warning(
        f"{len(analysis.problems)} problem(s) to fix before this network can be trained.",
        icon=":material/warning:",
    )

# --- diagram and export -----------------------------------------------------------------------

# Closed expanders draw nothing: the graph and code viewers would cost a first visit about half a
# second of loading and drawing (see bench/ui.py); opening one reruns the page and draws it.
diagram = st.expander("Diagram", icon=":material/account_tree:", key="diagram", on_change="rerun")
if diagram.open:
    diagram.graphviz_chart(network_dot(spec, analysis))

st.subheader("Export and import")
left, right = st.columns(2)
left.download_button(
    "Download spec (.json)",
    spec.to_json(),
    file_name="spec.json",
    mime="application/json",
    key="download_spec",
    icon=":material/download:",
)
upload = right.file_uploader(
    "Load a spec (.json)",
    type=["json"],
    key="upload_spec",
    max_upload_size=settings.PHOTO_UPLOAD_MB,  # the server's own cap is a dataset archive's
)
if upload is not None and st.session_state.get("loaded_upload") != upload.file_id:
    st.session_state.loaded_upload = upload.file_id
    st.session_state.pop("upload_error", None)
    try:
        edit(parse_spec(upload.getvalue(), source=upload.name))
        st.rerun()
    except SpecError as exc:
        st.session_state.upload_error = str(exc)
if error := st.session_state.get("upload_error"):
    right.error(plain(error), icon=":material/error:")
    if upload is None:
        st.session_state.pop("upload_error")

if analysis.valid:
    keras_code = st.expander("Keras code", icon=":material/code:", key="code", on_change="rerun")
    if keras_code.open:
        code = export_code(spec)
        keras_code.code(code, language="python")
        keras_code.download_button(
            "Download model.py", code, file_name="model.py", key="download_code"
        )
else:
    st.caption("Fix the problems above to export Keras code.")

spec_json = st.expander("Spec JSON", key="spec_json", on_change="rerun")
if spec_json.open:
    spec_json.code(json.dumps(spec.to_dict(), indent=2), language="json")
