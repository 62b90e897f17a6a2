"""Search: start a hyperparameter search (Optuna; every trial a run in the queue) and watch it:
its trials, the best so far, how the values tried relate to the score, which matter most, and
the best trial trained on in one click. The search runs in its own process (`cnn_core.search`);
this page reads its study."""

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cnn_core import access, api, settings
from cnn_core.config import TrainConfig, config_from_dict
from cnn_core.errors import UserError
from cnn_core.presets import list_presets
from cnn_core.runs import open_run, runs_root, slug
from cnn_core.search import (
    SearchRequest,
    default_space,
    list_searches,
    parse_space,
    request_search_stop,
    search_folder,
    search_owner,
    searching,
    stop_requested,
)
from cnn_core.search import start_search as launch_search
from dashboard.access import who
from dashboard.routing import ensure_routed
from dashboard.search_form import space_form_ui
from dashboard.searches import load_search_once
from dashboard.text import plain, show_error

ensure_routed()  # first: even a fresh server's first request goes through app.py

st.title("Search")


def start_ui() -> None:
    presets = {p.id: p for p in list_presets()}
    with st.expander("Start a search", expanded=not list_searches()):
        choice = st.selectbox(
            "Architecture", list(presets), format_func=lambda pid: presets[pid].spec.name
        )
        preset = presets[choice]
        config = config_from_dict(preset.config, source=choice) if preset.config else TrainConfig()
        source = st.text_input("Data source", value=settings.data_source(), key="search_data")
        trials = st.number_input("Trials", 1, 1000, 10, key="search_trials")
        name = st.text_input("Name", value=f"{slug(preset.spec.name)}-search", key="search_name")
        start = default_space(preset.spec, config)
        as_json = st.toggle("Write the search space as JSON", key="search_as_json")
        if as_json:
            text = st.text_area(
                "Search space (JSON: settings by key, layer parameters by number, e.g. "
                "1.filters, and 2-3.repeats for a block)",
                value=json.dumps(start.to_dict(), indent=1),
                height=220,
                key=f"search_space_{choice}",
            )
        else:
            with st.container(border=True):
                text = json.dumps(space_form_ui(preset.spec, config, start))
            with st.expander("This search space as JSON (for cnn-workbench search --space)"):
                st.code(json.dumps(json.loads(text), indent=1), language="json")
        if st.button("Start the search", type="primary", key="search_start"):
            user = who()
            try:
                space = parse_space(json.loads(text), preset.spec, config)
                access.check_data_source(user, source)  # on a shared server: its folders only
                access.check_quota(user)
                if search_folder(name, runs_root()).exists() and not access.may_control(
                    user, search_owner(name, runs_root())
                ):
                    raise access.AccessError(
                        f"the search {name} is someone else's; give yours another name."
                    )
                request = SearchRequest(
                    name,
                    preset.spec,
                    config,
                    space,
                    data_source=source.strip() or None,
                    trials=int(trials),
                    owner=user.user,  # on a shared server its trials are this user's runs
                )
                launch_search(request)
            except ValueError as exc:  # not JSON
                st.error(plain(f"The search space is not valid JSON: {exc}"))
            except UserError as exc:
                show_error(exc)
            else:
                st.session_state.search_shown = name
                st.rerun()


def trials_ui(name: str) -> None:
    try:
        result, study = load_search_once(name, runs_root())
    except (UserError, KeyError, OSError, ValueError) as exc:  # a damaged or missing journal
        st.error(plain(f"The search {name} cannot be read: {exc}"), icon=":material/error:")
        return
    live = searching(runs_root() / ".searches" / name)
    owner = search_owner(name, runs_root())
    if owner and settings.shared_mode():
        st.caption(plain(f"Started by {owner}: its trials are their runs."))
    best = result.best
    cols = st.columns(3)
    cols[0].metric("State", "searching" if live else "stopped")
    cols[1].metric("Trials", len(result.trials))
    cols[2].metric("Best validation accuracy", f"{best.value:.2%}" if best else "-")
    if live:
        stop_ui(name, owner)
    rows = [
        {"trial": t.number, "state": t.state, "validation accuracy": t.value, "run": t.run}
        | dict(t.values)
        for t in result.trials
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="search_trials_table")
    scored = [t for t in result.trials if t.value is not None]
    if scored:
        best_so_far, top = [], 0.0
        for t in scored:
            top = max(top, t.value)
            best_so_far.append(top)
        figure = go.Figure(
            [
                go.Scatter(
                    x=[t.number for t in scored],
                    y=[t.value for t in scored],
                    mode="markers",
                    name="trial",
                ),
                go.Scatter(
                    x=[t.number for t in scored], y=best_so_far, mode="lines", name="best so far"
                ),
            ]
        )
        figure.update_layout(
            title="Validation accuracy by trial",
            height=300,
            xaxis={"title": "trial", "dtick": 1},  # trials are whole numbers
            yaxis_title="validation accuracy",
        )
        st.plotly_chart(figure, key="search_best")
    if len(scored) >= 2:
        st.plotly_chart(parallel_figure(scored), key="search_parallel")
        importances_ui(study)
    if best and best.run and access.may_control(who(), owner):
        best_more_ui(best)
    elif best and best.run:
        whose = f"{owner} or an admin" if owner else "an admin"
        st.caption(plain(f"Only {whose} can train its best trial on."))


def stop_ui(name: str, owner: str | None) -> None:
    """Stop the search (its owner, or an admin, on a shared server): its trial training now
    stops, and no other starts."""
    user = who()
    if not access.may_control(user, owner):
        whose = f"{owner} or an admin" if owner else "an admin"
        st.caption(plain(f"Only {whose} can stop this search."))
    elif stop_requested(runs_root() / ".searches" / name):
        st.caption("Stopping: the trial training now stops after its batch.")
    elif st.button("Stop the search", key="search_stop", icon=":material/stop:"):
        request_search_stop(name, runs_root())
        access.audit(user, "stop", name, what="search")  # the audit's "run": the search's name
        st.rerun()


def best_more_ui(best) -> None:
    """Train the best trial's run on, by as many epochs as asked; then show it training."""
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    more = left.number_input("More epochs", 1, 10_000, 10, key="search_more")
    label = f"Train the best (trial {best.number}) {more} more epochs"
    if right.button(label, key="search_best_more", icon=":material/play_arrow:"):
        user = who()
        try:
            run = open_run(best.run)
            access.require(user, run, "resume")
            api.resume_run(run, more_epochs=int(more))
            access.audit(user, "resume", run.name, more_epochs=int(more))
        except UserError as exc:
            show_error(exc)
        else:
            st.query_params["run"] = best.run
            st.switch_page("pages/train.py")


def parallel_figure(scored: list) -> go.Figure:
    """Each trial as a line through the values it tried, coloured by its score."""
    keys = sorted({key for t in scored for key in t.values})
    dimensions = []
    for key in keys:
        values = [t.values.get(key) for t in scored]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            dimensions.append({"label": key, "values": values})
        else:  # choices that are not numbers: their position in the list
            labels = sorted({json.dumps(v) for v in values})
            dimensions.append(
                {
                    "label": key,
                    "values": [labels.index(json.dumps(v)) for v in values],
                    "tickvals": list(range(len(labels))),
                    "ticktext": labels,
                }
            )
    scores = [t.value for t in scored]
    dimensions.append({"label": "validation accuracy", "values": scores})
    figure = go.Figure(
        go.Parcoords(line={"color": scores, "colorscale": "Viridis"}, dimensions=dimensions)
    )
    # margins: the outer axes' names and ticks are drawn beyond the plot's edges
    figure.update_layout(
        title="Values tried, and the score", height=340, margin={"l": 70, "r": 90, "t": 80}
    )
    return figure


def importances_ui(study) -> None:
    import optuna

    try:
        found = optuna.importance.get_param_importances(study)
    except (ImportError, RuntimeError, ValueError) as exc:  # too few trials, or a missing package
        st.caption(plain(f"Parameter importances are not available yet ({exc})."))
        return
    figure = go.Figure(go.Bar(x=list(found.values()), y=list(found), orientation="h"))
    figure.update_layout(
        title="Which values mattered most (Optuna's importance)",
        height=260,
        margin={"l": 120},  # the parameters' names, at the left of their bars
    )
    st.plotly_chart(figure, key="search_importances")


start_ui()
names = list_searches(runs_root())
if not names:
    st.info("No searches yet.", icon=":material/info:")
    st.stop()
shown = st.session_state.get("search_shown")
chosen = st.selectbox(
    "Search", names, index=names.index(shown) if shown in names else 0, key="search_choice"
)
live = searching(runs_root() / ".searches" / chosen)
st.fragment(run_every=3.0 if live else None)(trials_ui)(chosen)  # a live search: redrawn
