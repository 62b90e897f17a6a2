"""Training cost and time to accuracy, side by side in one run on one machine:

1. the tutorial model through our engine vs the tutorial's own bare Keras script
   (seconds per epoch, peak memory);
2. the CPU presets' whole `train --evaluate` command (process start and the test-set evaluation,
   test-time flips included, counted; data cached) on three seeds
   vs the tutorial script's whole 15-epoch run: `fast_cpu` aims at 85% test accuracy in no more
   time, `best_cpu` at 90% in at most three times it, each within 1 point across the seeds.

Each contender runs in its own fresh process, one at a time. This machine's speed drifts, so
the tutorial script runs three times (first, in the middle and last) and the presets' time is
judged against the mean of the three; the tutorial model through our engine and the presets'
first two seeds run before and after the middle one (mirrored order).

    python -m bench.training [--epochs 3] [--tutorial-epochs 15] [--presets fast_cpu best_cpu]

With `--presets`, the presets it leaves out keep their figures from the results before, each
judged against the tutorial script of its own run, and the report names that run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import RESULTS, ROOT, cifar_source, write_result
from cnn_core.presets import load_preset, preset_ids
from cnn_core.runs import Run

MEASURE = (
    "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr[-3000:]); "
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; "
    "print(json.dumps({'peak_rss_mb': peak, 'wall_seconds': time.perf_counter() - t, "
    "'returncode': p.returncode}))"
)


def measured(command: list[str], *, env: dict[str, str] | None = None) -> tuple[list[str], dict]:
    """Run `command` (in `env`, else this environment) under a wrapper that reports its peak
    memory and wall time."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    stats = json.loads(lines[-1])
    if stats["returncode"] != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return lines[:-1], stats


def bare_tutorial(epochs: int) -> dict:
    lines, stats = measured(
        [sys.executable, "-m", "bench.tutorial_script", "--epochs", str(epochs)]
    )
    return {**json.loads(lines[-1]), **stats}


def ours(
    preset: str, source: str, runs: str, epochs: int | None = None, config: str | None = None
) -> dict:
    command = [
        sys.executable,
        "-m",
        "cnn_core",
        "train",
        preset,
        "--data",
        source,
        "--runs-dir",
        runs,
        "--json",
        "--evaluate",  # the test set in the same process, as the tutorial script's evaluate
    ]
    if epochs:
        command += ["--epochs", str(epochs)]
    if config:
        command += ["--config", config]
    lines, stats = measured(command)
    summary = json.loads(lines[-1])
    run_dir = summary["run_dir"]
    run = Run(Path(run_dir))
    history = run.history()
    log = run.file("train.log").read_text(errors="replace")
    return {
        "epoch_seconds": [row["epoch_seconds"] for row in history],
        "test_accuracy": summary["test_accuracy"],
        "precision": "bfloat16 mixed" if "bfloat16 mixed precision" in log else "float32",
        **stats,
        "run_dir": run_dir,
    }


def combined(runs: list[dict]) -> dict:
    """Several runs of one contender: every steady epoch pooled, the worst peak memory and the
    worst test accuracy, the mean wall time."""
    epochs = [t for run in runs for t in run["epoch_seconds"][1:]]
    return {
        "runs": runs,
        "steady_epoch_seconds": statistics.median(epochs),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "wall_seconds": statistics.mean(run["wall_seconds"] for run in runs),
        "test_accuracy": min(run["test_accuracy"] for run in runs),
        "precision": runs[0].get("precision", "float32"),
    }


def tutorial_runs(runs: list[dict]) -> dict:
    """The tutorial script's runs together, as `combined` (the mean wall time is what the
    presets are judged against), but with their mean test accuracy: the script is unseeded."""
    return {
        **combined(runs),
        "test_accuracy": statistics.mean(run["test_accuracy"] for run in runs),
    }


SEEDS = (1, 2, 3)
GOALS = {  # preset: (test accuracy on every seed, most wall time as a multiple of the tutorial's)
    "fast_cpu": (0.85, 1.0),
    "best_cpu": (0.90, 3.0),
}
SPREAD = 0.01  # the most the seeds' test accuracies may differ


def seeded(preset: str, seed: int, folder: str) -> str:
    """A configuration file: `preset`'s recommended settings with `seed`."""
    path = Path(folder) / f"{preset}-seed{seed}.json"
    path.write_text(json.dumps({**load_preset(preset).config, "seed": seed}))
    return str(path)


def judged(preset: str, runs: list[dict], tutorial_wall: float) -> dict:
    """One preset's seeds against its goal (GOALS) and the tutorial script's wall time."""
    accuracy, times = GOALS.get(preset, (0.0, 1.0))
    accuracies = [run["test_accuracy"] for run in runs]
    ratio = statistics.mean(run["wall_seconds"] for run in runs) / tutorial_wall
    return {
        "preset": preset,
        **combined(runs),
        "seeds": [run["seed"] for run in runs],
        "test_accuracies": accuracies,
        "accuracy_spread": max(accuracies) - min(accuracies),
        "time_ratio": ratio,
        "goal": {"test_accuracy": accuracy, "time_ratio": times, "spread": SPREAD},
        "met": min(accuracies) >= accuracy
        and ratio <= times
        and max(accuracies) - min(accuracies) <= SPREAD,
    }


def carried(earlier: dict | None, ran: list[str]) -> dict:
    """The presets an earlier run of this benchmark measured and this one (`--presets`) did not,
    kept so that a partial rerun does not drop them, each with the date of its own run and the
    tutorial script's wall time of that run, which its ratio was judged against: a ratio only
    compares figures measured in one run."""
    if not earlier:
        return {}
    kept = {}
    for name, got in earlier.get("presets", {}).items():
        if name in ran or name not in GOALS:  # a preset that lost its goal is not kept
            continue
        kept[name] = {
            "measured_on": earlier.get("machine", {}).get("date"),
            "tutorial_wall_seconds": got["wall_seconds"] / got["time_ratio"],
            "tutorial_test_accuracy": earlier["bare_tutorial"]["test_accuracy"],
            **got,  # one carried over before keeps its own run's date and tutorial
        }
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3, help="epochs for the per-epoch figures")
    parser.add_argument("--tutorial-epochs", type=int, default=15)
    parser.add_argument(
        "--presets", nargs="+", default=[name for name in GOALS if name in preset_ids()]
    )
    args = parser.parse_args()
    source = cifar_source()
    with tempfile.TemporaryDirectory() as runs:
        # warm the dataset cache so that neither side pays the first decode
        subprocess.run(
            [sys.executable, "-m", "cnn_core", "data", source],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        # the tutorial model through our engine also in float32, to separate the engine's cost
        # from mixed precision's gain
        float32 = Path(runs) / "float32.json"
        settings = {**load_preset("tutorial_cnn").config, "mixed_precision": False}
        float32.write_text(json.dumps(settings))

        def engine() -> dict:
            return ours("tutorial_cnn", source, runs, epochs=args.epochs)

        def engine32() -> dict:
            return ours("tutorial_cnn", source, runs, epochs=args.epochs, config=str(float32))

        def preset(name: str, seed: int) -> dict:
            return {**ours(name, source, runs, config=seeded(name, seed, runs)), "seed": seed}

        # This machine's speed drifts from minute to minute, so the tutorial script runs first,
        # in the middle and last; the tutorial model through our engine and each preset's first
        # two seeds run before and after the middle one, in mirrored order; the third seeds
        # follow.
        first, second, third = SEEDS
        scripts = [bare_tutorial(args.tutorial_epochs)]
        before = [engine(), engine32()] + [preset(name, first) for name in args.presets]
        scripts.append(bare_tutorial(args.tutorial_epochs))
        after = [preset(name, second) for name in reversed(args.presets)] + [engine32(), engine()]
        last = [preset(name, third) for name in args.presets]
        scripts.append(bare_tutorial(args.tutorial_epochs))
    bare = tutorial_runs(scripts)
    mixed = combined([before[0], after[-1]])
    plain = combined([before[1], after[-2]])
    seeds = {
        name: [before[2 + i], after[len(args.presets) - 1 - i], last[i]]
        for i, name in enumerate(args.presets)
    }
    presets = {name: judged(name, got, bare["wall_seconds"]) for name, got in seeds.items()}
    earlier = RESULTS / "training.json"
    presets |= carried(json.loads(earlier.read_text()) if earlier.exists() else None, args.presets)
    bare_epoch = bare["steady_epoch_seconds"]
    epoch_ratio = mixed["steady_epoch_seconds"] / bare_epoch
    epoch_ratio_float32 = plain["steady_epoch_seconds"] / bare_epoch
    peak = max(mixed["peak_rss_mb"], plain["peak_rss_mb"])
    memory_ratio = peak / bare["peak_rss_mb"]
    print(
        "tutorial script: "
        + ", ".join(f"{run['wall_seconds']:.0f} s" for run in scripts)
        + f" (mean {bare['wall_seconds']:.0f} s)"
    )
    print(f"{'':<40}{'tutorial':>10}{'ours':>10}{'ratio':>8}")
    for label, theirs, mine, ratio, digits in (
        ("seconds per epoch", bare_epoch, mixed["steady_epoch_seconds"], epoch_ratio, 2),
        ("  ours in float32", bare_epoch, plain["steady_epoch_seconds"], epoch_ratio_float32, 2),
        ("peak memory (MB)", bare["peak_rss_mb"], peak, memory_ratio, 0),
    ):
        print(f"{label:<40}{theirs:>10.{digits}f}{mine:>10.{digits}f}{ratio:>8.2f}")
    for name, got in presets.items():
        if "measured_on" in got:
            print(f"{name}: kept from the run of {got['measured_on']} (not run this time)")
            continue
        print(
            f"{name + ' wall time (s), mean of 3 seeds':<40}{bare['wall_seconds']:>10.0f}"
            f"{got['wall_seconds']:>10.0f}{got['time_ratio']:>8.2f}"
        )
        print(
            f"{'  test accuracy, worst seed':<40}{bare['test_accuracy']:>10.4f}"
            f"{got['test_accuracy']:>10.4f}   seeds "
            + ", ".join(f"{a:.4f}" for a in got["test_accuracies"])
            + f"; goal {'met' if got['met'] else 'NOT met'}"
        )
    print(f"(tutorial: {args.tutorial_epochs} epochs; presets: their recommended settings)")
    write_result(
        "training",
        {
            "bare_tutorial": bare,
            "engine_tutorial": mixed,
            "engine_tutorial_float32": plain,
            "presets": presets,
            "epoch_ratio": epoch_ratio,
            "epoch_ratio_float32": epoch_ratio_float32,
            "memory_ratio": memory_ratio,
        },
    )


if __name__ == "__main__":
    main()
