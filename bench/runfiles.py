"""Run files that cannot hang: what `cnn-workbench runs` costs with damaged runs present, and what
the Train page's history work costs on every 1.5 s refresh of a run with a 67 MB history.csv.

    python -m bench.runfiles [--history-mb 67] [--runs 100]

`runs` is timed in a fresh process (as a user runs it) over `--runs` runs of which ten are
damaged: a FIFO status.json and train.log, a history.csv linked to /dev/zero, `"pid": "1"`,
`"pid": 10**30`, a 200 MB sparse status.json... A process that takes over 60 s is reported as
hung. The history figures are the page's own work per refresh (reading the history, building
and serialising both curves and the epoch table) after one epoch was appended, and the peak of
Python's allocations during it (tracemalloc, in a separate pass so that it does not slow the
timed one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.common import write_result
from cnn_core.config import TrainConfig
from cnn_core.runs import HISTORY, LOG, STATUS, atomic_write_text, create_run
from tests.support import TINY


def history_text(megabytes: int) -> tuple[str, int]:
    header = "epoch,accuracy,loss,val_accuracy,val_loss,epoch_seconds,lr\n"
    row = "{e},0.8123456789012345,0.4123456789012345,0.7123456789012345,0.5123456789012345,"
    row += "6.123456789012345,0.0009876543210987654\n"
    count = megabytes * 1_000_000 // len(row.format(e=100_000))
    return header + "".join(row.format(e=e) for e in range(count)), count


def page_work(run, charts) -> int:
    """What the Train page does with the history at each refresh; returns the rows read."""
    import pandas as pd

    history = run.history()
    for metric in ("accuracy", "loss"):  # built and serialised, as st.plotly_chart does
        charts.curve_figure({run.name: history}, metric, title=metric).to_json()
    shown = charts.latest_rows(history) if hasattr(charts, "latest_rows") else history
    pd.DataFrame(shown).to_json()  # st.dataframe serialises its frame too
    return len(history)


def bench_history(root: Path, megabytes: int, refreshes: int) -> dict:
    from dashboard import charts

    run = create_run(TINY, TrainConfig(epochs=1), data_source="unused", root=root)
    text, count = history_text(megabytes)
    atomic_write_text(run.file(HISTORY), text)
    started = time.perf_counter()
    page_work(run, charts)
    first = time.perf_counter() - started
    seconds = []
    for i in range(refreshes):
        extra = f"{count + i},0.8,0.4,0.7,0.5,6.1,0.001\n"
        text += extra
        atomic_write_text(run.file(HISTORY), text)  # rewritten whole, as the trainer does
        started = time.perf_counter()
        rows = page_work(run, charts)
        seconds.append(time.perf_counter() - started)
        assert rows == count + i + 1, rows
    text += f"{count + refreshes},0.8,0.4,0.7,0.5,6.1,0.001\n"
    atomic_write_text(run.file(HISTORY), text)
    tracemalloc.start()
    page_work(run, charts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "history_bytes": len(text),
        "history_rows": count,
        "first_view_seconds": round(first, 3),
        "refresh_seconds": [round(s, 4) for s in seconds],
        "refresh_median_seconds": round(sorted(seconds)[len(seconds) // 2], 4),
        "refresh_peak_allocated_mb": round(peak / 1e6, 1),
    }


def damaged_runs(root: Path, runs: int) -> list[str]:
    made = []
    for i in range(runs):
        run = create_run(TINY, TrainConfig(epochs=1), data_source="unused", root=root)
        made.append(run.name)
        kind = i  # the first seven are damaged, one way each
        if kind >= 7:
            continue
        status = json.loads(run.file(STATUS).read_text())
        if kind == 0:
            run.file(STATUS).write_text(json.dumps({**status, "state": "running", "pid": "1"}))
        elif kind == 1:
            run.file(STATUS).write_text(json.dumps({**status, "pid": 10**30}))
        elif kind == 2:
            run.file(STATUS).unlink()
            os.mkfifo(run.file(STATUS))
        elif kind == 3:
            run.file(HISTORY).symlink_to("/dev/zero")
        elif kind == 4:
            os.mkfifo(run.file(LOG))
            run.file(STATUS).write_text(json.dumps({**status, "state": "running", "pid": 1}))
        elif kind == 5:
            with open(run.file(STATUS), "wb") as handle:
                handle.truncate(200 << 20)
        elif kind == 6:
            run.file(STATUS).write_text(json.dumps({**status, "best_val_accuracy": "x"}))
    return made


def bench_runs_command(root: Path, runs: int) -> dict:
    damaged_runs(root, runs)
    command = [sys.executable, "-m", "cnn_core", "runs", "--runs-dir", str(root)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return {"runs": runs, "damaged": 7, "outcome": "hung (killed after 60 s)"}
    seconds = time.perf_counter() - started
    listed = sum(1 for line in done.stdout.splitlines() if line.strip())
    return {
        "runs": runs,
        "damaged": 7,
        "seconds": round(seconds, 3),
        "exit_code": done.returncode,
        "runs_listed": listed,
        "stderr": done.stderr.strip()[-300:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history-mb", type=int, default=67)
    parser.add_argument("--refreshes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "runs_command": bench_runs_command(Path(tmp) / "damaged", args.runs),
            "train_page_history": bench_history(
                Path(tmp) / "history", args.history_mb, args.refreshes
            ),
        }
    print(json.dumps(result, indent=2))
    write_result("runfiles" + (f"-{args.label}" if args.label else ""), result)


if __name__ == "__main__":
    main()
