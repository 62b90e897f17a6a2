"""Runs side by side: what the Runs page compares, as plain data it only has to draw.

`compare_runs` reads each chosen run's history, architecture and training settings and returns
a `Comparison`: the histories for the curves, and a table with one column per run and one row per
fact (the architecture's name, each layer, each setting), marking the rows where the runs differ.
`curve_points` thins a long history to the points a chart draws.

This module draws nothing and knows nothing of Streamlit, Plotly or Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnn_core.errors import UserError
from cnn_core.runs import Run

CHART_POINTS = 2000  # per curve: a 1,000,000-epoch history is drawn from every 500th epoch
PROBLEM = "problem"  # the row that says why a run's architecture or settings cannot be read


@dataclass(frozen=True)
class Comparison:
    """Several runs, side by side. `cells[r][c]` is row `rows[r]` of run `runs[c]`, None where
    that run has no such row (fewer layers, or files that cannot be read)."""

    runs: tuple[str, ...]  # the column headings: run names, in the order chosen
    rows: tuple[str, ...]  # the row headings: "architecture", "layer 1".., then each setting
    cells: tuple[tuple[str | None, ...], ...]
    differs: tuple[bool, ...]  # per row: not every run holds the same value (a missing one counts)
    histories: Mapping[str, Sequence[Mapping[str, Any]]]  # run name -> its completed epochs

    def only_differing(self) -> Comparison:
        """The same comparison with only the rows where the runs differ."""
        keep = [i for i, differs in enumerate(self.differs) if differs]
        return Comparison(
            runs=self.runs,
            rows=tuple(self.rows[i] for i in keep),
            cells=tuple(self.cells[i] for i in keep),
            differs=tuple(True for _ in keep),
            histories=self.histories,
        )


def compare_runs(runs: Sequence[Run]) -> Comparison:
    """The chosen runs' histories and their architectures and settings, row by row.

    A run whose spec.json or config.json cannot be read gets a "problem" row saying why,
    instead of failing the comparison of the others.
    """
    columns = {run.name: run_facts(run) for run in runs}
    rows: dict[str, None] = {}  # a dict keeps the order rows are first met in
    for facts in columns.values():
        rows.update(dict.fromkeys(facts))
    cells = tuple(tuple(facts.get(row) for facts in columns.values()) for row in rows)
    return Comparison(
        runs=tuple(columns),
        rows=tuple(rows),
        cells=cells,
        differs=tuple(len(set(values)) > 1 for values in cells),
        histories={run.name: run.history() for run in runs},
    )


def run_facts(run: Run) -> dict[str, str]:
    """One run's column of the comparison: its architecture's name, its layers and settings."""
    try:
        spec, config = run.spec(), run.config()
    except UserError as exc:
        return {PROBLEM: str(exc)}
    facts = {"architecture": spec.name}
    for i, layer in enumerate(spec.layers):
        facts[f"layer {i + 1}"] = " ".join(
            [layer.type, *(f"{key}={value}" for key, value in layer.params.items())]
        )
    for key, value in config.to_dict().items():
        facts[key] = str(value)
    return facts


def curve_points(
    history: Sequence[Mapping[str, Any]], key: str, *, max_points: int = CHART_POINTS
) -> tuple[list[int], list[float]]:
    """(epochs counted from 1, values) of `key` in a history, at most about `max_points` of
    them: a long history is thinned evenly, and its last epoch always shows. Epochs without a
    value for `key` (no validation that epoch) are left out."""
    step = max(1, -(-len(history) // max_points))
    rows = [*history[::step], *history[-1:]] if step > 1 else history
    points = [(row["epoch"] + 1, row[key]) for row in rows if row.get(key) is not None]
    return [epoch for epoch, _ in points], [value for _, value in points]
