"""The command line: `python -m cnn_core COMMAND ...`, for headless use.

Exit codes everywhere: 0 success, 2 bad input (a one-line message on stderr), 1 unexpected
failure (one line too; set CNN_CORE_DEBUG=1 to see the traceback). Commands that do not train
never import Keras, so they answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnn_core import settings
from cnn_core.config import (
    SETTING_NAMES,
    TrainConfig,
    cli_help,
    config_from_dict,
    config_with_settings,
    load_config,
    setting_named,
)
from cnn_core.errors import ConfigError, SpecError, UserError, exit_code_of
from cnn_core.layers import format_shape
from cnn_core.progress import placement_text
from cnn_core.runs import EvaluationReport, Run, RunStatus, State, list_runs, open_run, runs_root
from cnn_core.shapes import Analysis, analyze
from cnn_core.spec import ModelSpec, load_spec
from cnn_core.terminal import terminal_safe

if TYPE_CHECKING:  # the trainer imports Keras: only for the type
    from cnn_core.train import Outcome

WORKER_NICENESS = 10  # a detached training process yields the CPU to the dashboard
PROG = "cnn-workbench"  # the console script; `python -m cnn_core` is the same program


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `... | head`
        return 0
    except (Exception, KeyboardInterrupt) as exc:
        _say_error(exc)
        return exit_code_of(exc)  # by its type, never its words


def _say_error(exc: BaseException) -> None:
    """The one line a command that `exc` ended prints on stderr."""
    if isinstance(exc, UserError):
        say(f"error: {exc}", file=sys.stderr)
    elif isinstance(exc, KeyboardInterrupt):
        say("interrupted", file=sys.stderr)
    elif isinstance(exc, OSError):  # a read-only or unreadable folder, a full disk: not a bug
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"error: cannot read or write{where} ({exc.strerror or exc}); check its permissions "
            "and the free disk space, then try again.",
            file=sys.stderr,
        )
    else:  # a bug: say so in one line, keep the traceback for who asks
        if settings.debug():
            traceback.print_exc()
        say(
            f"unexpected error: {type(exc).__name__}: {exc} (this is a bug; set CNN_CORE_DEBUG=1 "
            "to see where it happened)",
            file=sys.stderr,
        )


def say(text: str = "", *, file: Any = None, end: str = "\n", flush: bool = False) -> None:
    """Print one line (stdout unless `file`): every line goes through here, so that a class,
    file or run name cannot send the terminal escape codes. JSON lines are safe already:
    `json.dumps` writes every non-ASCII and control character as `\\uNNNN`."""
    print(terminal_safe(str(text)), file=file or sys.stdout, end=end, flush=flush)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="CNN Workbench: design, check and train CNNs from the terminal."
    )
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    spec_help = "a spec .json file, or the id of a preset (see `presets`)"
    p = sub.add_parser("validate", help="check a spec; print each layer's shape and parameters")
    p.add_argument("spec", metavar="SPEC", help=spec_help)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(run=_validate)

    p = sub.add_parser("code", help="print a standalone Keras script that builds the spec")
    p.add_argument("spec", metavar="SPEC", help=spec_help)
    p.set_defaults(run=_code)

    p = sub.add_parser("presets", help="list the preset architectures")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(run=_presets)

    p = sub.add_parser("data", help="load a dataset source (decode and cache it) and describe it")
    p.add_argument(
        "source",
        metavar="SOURCE",
        nargs="?",
        help="cifar10, a folder or archive of images, or the official CIFAR-10 archive "
        "(default: $CNN_CORE_DATA, else cifar10)",
    )
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(32, 32))
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument(
        "--test-split",
        type=float,
        default=0.2,
        help="share of each class held out for testing from class folders without a split",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(run=_data)

    p = sub.add_parser("train", help="train SPEC in a new run; prints each epoch")
    _spec_and_data(p, spec_help)
    p.add_argument("--epochs", type=int, help="override the configuration's epochs")
    p.add_argument(
        "--limit",
        type=int,
        help=cli_help("limit"),
    )
    p.add_argument(
        "--test-split",
        type=float,
        help=cli_help("test_split"),
    )
    p.add_argument("--batch-size", type=int, help="override the configuration's batch size")
    p.add_argument("--lr", type=float, help="override the configuration's learning rate")
    p.add_argument("--devices", metavar="N|all", type=_devices, help=cli_help("devices"))
    p.add_argument("--fine-tune", type=int, metavar="N", help=cli_help("fine_tune", off=True))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        type=_setting_pair,
        metavar="KEY=VALUE",
        help="set any training setting (VALUE as JSON, else a string; repeat for more): "
        + ", ".join(SETTING_NAMES),
    )
    p.add_argument("--detach", action="store_true", help="train in the background and return")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="once training completes, evaluate the model on the test set in the same process "
        "(as `evaluate` does; the report is stored with the run)",
    )
    p.add_argument(
        "--create-only",
        action="store_true",
        help="create the run and print its folder without training it: to start its workers "
        "on a cluster (see `worker`)",
    )
    _run_options(p, json_help=True)
    p.set_defaults(run=_train)

    p = sub.add_parser(
        "lr-find",
        help="a learning-rate range test: the loss as the rate grows, and a suggested rate "
        "(writes no run)",
    )
    _spec_and_data(p, spec_help)
    p.add_argument("--batch-size", type=int, help="override the configuration's batch size")
    p.add_argument("--limit", type=int, help=cli_help("limit"))
    p.add_argument(
        "--steps", type=int, default=100, help="batches to train, the rate growing (default 100)"
    )
    p.add_argument("--seed", type=int, help="seeds the weights and the batches (default 0)")
    p.add_argument("--out", metavar="FILE.json", help="also write the result to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(run=_lr_find)

    p = sub.add_parser(
        "search",
        help="a hyperparameter search with Optuna: every trial a run in the queue; started "
        "again with the same --name, it goes on where it stopped",
    )
    _spec_and_data(p, spec_help)
    p.add_argument(
        "--space",
        metavar="SEARCH.json",
        help="what to vary (default: the learning rate, weight decay and each layer's width)",
    )
    p.add_argument("--trials", type=int, default=10, help="trials in all (default 10)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S s")
    p.add_argument("--name", help="the search's name (default: the spec's name and the time)")
    _run_options(p, json_help=True)
    p.set_defaults(run=_search)

    p = sub.add_parser("resume", help="continue a run from its last completed epoch")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--epochs", type=int, help="train this many more epochs (also after the end)")
    p.add_argument("--detach", action="store_true", help="train in the background and return")
    _run_options(p, json_help=True)
    p.set_defaults(run=_resume)

    p = sub.add_parser("stop", help="stop a run within one batch, keeping its model")
    p.add_argument("run_dir", metavar="RUN_DIR")
    _run_options(p, json_help=True)
    p.set_defaults(run=_stop)

    p = sub.add_parser("runs", help="list every run with its state")
    _run_options(p, json_help=True)
    p.set_defaults(run=_runs)

    p = sub.add_parser("evaluate", help="evaluate a run's model on the test set")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", metavar="SOURCE", help="dataset source (default: the run's own)")
    p.add_argument("--force", action="store_true", help="recompute a stored evaluation")
    _run_options(p, json_help=True)
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("predict", help="classify image files with a run's model")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    _run_options(p, json_help=True)
    p.set_defaults(run=_predict)

    p = sub.add_parser(
        "export", help="export a run's model as a SavedModel, ONNX or LiteRT file, with proof"
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", required=True, choices=("savedmodel", "onnx", "litert"))
    p.add_argument(
        "--quantize", choices=("int8",), help="int8 weights and activations (LiteRT only)"
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the folder to write (an earlier export there is replaced)",
    )
    _run_options(p, json_help=True)
    p.set_defaults(run=_export)

    p = sub.add_parser(
        "worker",
        help="train a run in this process: one of several processes on a cluster (JAX), or as "
        "`train --detach` and the dashboard start it",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--more-epochs", type=int, help="train this many more epochs")
    p.add_argument("--claim-fd", type=int, help=argparse.SUPPRESS)  # handed over by a launcher
    p.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="the first process's address: every process of one run gives the same",
    )
    p.add_argument("--num-processes", type=int, metavar="N", help="processes that train the run")
    p.add_argument("--process-id", type=int, metavar="I", help="this process: 0 to N-1")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="find the processes from the cluster's environment (Slurm's srun, Open MPI's "
        "mpirun), as jax.distributed does",
    )
    p.set_defaults(run=_worker)
    return parser


def _spec_and_data(parser: argparse.ArgumentParser, spec_help: str) -> None:
    """SPEC, --config and --data: what a command that trains needs."""
    parser.add_argument("spec", metavar="SPEC", help=spec_help)
    parser.add_argument(
        "--config",
        metavar="CONFIG.json",
        help="training configuration file (default: a preset's recommended settings)",
    )
    parser.add_argument("--data", metavar="SOURCE", help="dataset source (default: $CNN_CORE_DATA)")


def _run_options(parser: argparse.ArgumentParser, *, json_help: bool) -> None:
    parser.add_argument(
        "--runs-dir", metavar="DIR", help="the runs root (default: $CNN_CORE_RUNS, else ./runs)"
    )
    if json_help:
        parser.add_argument(
            "--json", action="store_true", help="make the last line of output one JSON object"
        )


def resolve_spec(text: str) -> ModelSpec:
    """A spec file path, or a preset id when no such file exists."""
    from cnn_core.presets import load_preset, preset_ids

    if not Path(text).exists() and text in preset_ids():
        return load_preset(text).spec
    if not Path(text).exists() and not text.endswith(".json"):
        raise SpecError(
            f"{text} is neither a spec file nor a preset; the presets are "
            + ", ".join(preset_ids())
            + "."
        )
    return load_spec(text)


def _validate(args: argparse.Namespace) -> int:
    try:
        spec = resolve_spec(args.spec)
    except SpecError as exc:
        if args.json:
            doc = {"valid": False, "errors": [{"layer": None, "message": str(exc)}]}
            say(json.dumps({**doc, "layers": [], "total_params": 0}))
        raise
    analysis = analyze(spec)
    if args.json:
        say(json.dumps(analysis.to_dict()))
    else:
        say(format_table(spec, analysis))
    for problem in analysis.problems:
        say(f"error: {problem.message}", file=sys.stderr)
    return 0 if analysis.valid else 2


def format_table(spec: ModelSpec, analysis: Analysis) -> str:
    rows = [("#", "layer", "output", "params")]
    for info in analysis.layers:
        position = "" if info.index is None else str(info.index + 1)
        shape = format_shape(info.output_shape)
        rows.append((position, info.description, shape, f"{info.params:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{spec.name}: {format_shape(spec.input_shape)} input, {spec.num_classes} classes"]
    for row in rows:
        lines.append(
            f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
            f"{row[3]:>{widths[3]}}"
        )
    lines.append(
        f"total: {analysis.total_params:,} parameters ({analysis.model_bytes / 1e6:.1f} MB), "
        f"{analysis.total_macs / 1e6:.1f} M multiply-adds and "
        f"{analysis.activation_bytes / 1e6:.2f} MB of activations per image"
    )
    lines.append("valid" if analysis.valid else f"INVALID: {len(analysis.problems)} problem(s)")
    return "\n".join(lines)


def _code(args: argparse.Namespace) -> int:
    from cnn_core.export import export_code

    say(export_code(resolve_spec(args.spec)), end="")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from cnn_core.presets import list_presets

    presets = list_presets()
    if args.json:
        doc = [
            {
                "id": p.id,
                "name": p.spec.name,
                "description": p.spec.description,
                "total_params": analyze(p.spec).total_params,
                "config": p.config,
            }
            for p in presets
        ]
        say(json.dumps({"presets": doc}))
        return 0
    for p in presets:
        params = analyze(p.spec).total_params
        say(f"{p.id:<14} {p.spec.name} ({params:,} parameters)")
        say(f"{'':<14} {p.spec.description}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from cnn_core.data.report import dataset_report
    from cnn_core.datasets import load_dataset

    start = time.perf_counter()
    data = load_dataset(
        args.source,
        image_size=tuple(args.size),
        channels=args.channels,
        test_split=args.test_split,
    )
    seconds = time.perf_counter() - start
    report = dataset_report(data)
    summary = {
        "source": data.source,
        "train": len(data.y_train),
        "test": len(data.y_test),
        "image_shape": list(data.x_train.shape[1:]),
        "classes": list(data.class_names),
        "skipped": data.skipped,
        "warnings": list(data.warnings),
        "seconds": round(seconds, 3),
        "report": report.to_dict(),
    }
    if args.json:
        say(json.dumps(summary))
        return 0
    for warning in data.warnings:
        say(f"warning: {warning}", file=sys.stderr)
    say(
        f"{data.source}: {summary['train']:,} training and {summary['test']:,} test images of "
        f"{format_shape(summary['image_shape'])}, {len(data.class_names)} classes "
        f"({', '.join(data.class_names)}); loaded in {seconds:.2f} s"
    )
    say(format_report(report))
    return 0


def format_report(report: Any) -> str:
    """The health report as a table of images per class and split, then the advice."""
    splits = list(report.counts)
    width = max(len(name) for name in (*report.class_names, "class"))
    lines = [f"layout: {report.layout}" if report.layout else "layout: -"]
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in splits))
    for i, name in enumerate(report.class_names):
        cells = "  ".join(f"{report.counts[s][i]:>10,}" for s in splits)
        lines.append(f"{name:<{width}}  {cells}")
    lines.append(
        f"{report.found:,} files found: {report.used:,} images used, {report.skipped:,} skipped; "
        f"classes {report.imbalance:.1f}:1 (largest to smallest, training)"
    )
    if report.native_size and report.smallest:
        lines.append(
            f"their own size: about {report.native_size[0]}x{report.native_size[1]} (smallest "
            f"{report.smallest[0]}x{report.smallest[1]}, width/height {report.aspect_ratio})"
        )
    copies = sum(report.duplicates.values())
    lines.append(
        f"{report.grey:,} grey images; {copies} exact copies within a split; {report.leaks} test "
        "images identical to training images"
    )
    lines += [f"advice: {line}" for line in report.advice]
    return "\n".join(lines)


def _run_summary(run: Run, status: RunStatus) -> dict:
    return {
        "run_dir": str(run.path),
        "name": run.name,
        "state": status.state,
        "epochs_completed": status.epochs_completed,
        "epochs_target": status.epochs_target,
        "best_val_accuracy": status.best_val_accuracy,
        "devices": status.devices,
        "placement": status.placement,
        "images_per_second": status.images_per_second,
        "images_per_second_per_device": per_device(status),
        "not_learning": status.not_learning,
        "gpus": list(status.gpus) if status.gpus is not None else None,  # the queue's, if any
        "error": status.error,
    }


def per_device(status: RunStatus) -> float | None:
    if status.images_per_second is None or not status.devices:
        return None
    return round(status.images_per_second / status.devices, 1)


def _exit_code(status: RunStatus, outcome: Outcome | None) -> int:
    """The training process's own verdict when it trained here (by the type of what ended it),
    else what the recorded state says: a run that failed or diverged before this command
    looked is the user's to fix (its error is printed)."""
    if outcome is not None:
        return outcome.exit_code
    return UserError.exit_code if status.state in (State.FAILED, State.DIVERGED) else 0


def _report(
    run: Run,
    status: RunStatus,
    *,
    as_json: bool,
    outcome: Outcome | None = None,
    evaluation: EvaluationReport | None = None,
) -> int:
    if as_json:
        summary = _run_summary(run, status)
        if evaluation is not None:
            summary["test_accuracy"] = evaluation.accuracy
            summary["test_images"] = evaluation.n
        say(json.dumps(summary))
    else:
        best = status.best_val_accuracy
        line = (
            f"{run.path}: {status.state}, {status.epochs_completed}/{status.epochs_target} epochs"
        )
        if best is not None:
            line += f", best validation accuracy {best:.4f}"
        where = placement_text(status)
        if where:
            line += f", {where}"
        say(line)
        if evaluation is not None:
            say(f"test accuracy {evaluation.accuracy:.4f} on {evaluation.n:,} images")
    if status.error:
        say(f"error: {status.error}", file=sys.stderr)
    if status.not_learning:
        say(f"warning: {status.not_learning}", file=sys.stderr)
    for note in status.notes:
        say(f"note: {note}", file=sys.stderr)
    return _exit_code(status, outcome)


def _train(args: argparse.Namespace) -> int:
    from cnn_core.api import launch_run, prepare_run

    if args.evaluate and (args.detach or args.create_only):
        flag = "--detach" if args.detach else "--create-only"
        raise UserError(f"--evaluate waits for the training to end; leave out {flag}.")
    spec = resolve_spec(args.spec)
    config = _with_flags(_base_config(args), args)
    run = prepare_run(spec, config, data_source=args.data, root=args.runs_dir)
    if args.create_only:
        say(str(run.path))
        return 0
    if not args.detach:  # first, so that whoever presses Ctrl-C knows what to resume
        say(
            f"run: {run.path} (stop with Ctrl-C; resume with: {PROG} resume {run.path})",
            file=sys.stderr,
            flush=True,
        )
    outcome = launch_run(run, detach=args.detach)
    status = run.status()
    evaluation = None
    if args.evaluate and status.state == State.COMPLETED:
        from cnn_core.evaluate import evaluate_run

        evaluation = evaluate_run(run)
        _warn_about(evaluation)
    code = _report(run, status, as_json=args.json, outcome=outcome, evaluation=evaluation)
    if args.evaluate and evaluation is None and not args.json:
        say(f"not evaluated: the run is {status.state}, not completed", file=sys.stderr)
    return code


def _devices(value: str | None) -> int | str | None:
    """--devices: a number, or "all" (checked with the setting's own message)."""
    if value is None or not value.strip().isdigit():
        return value
    return int(value)


def _base_config(args: argparse.Namespace) -> TrainConfig:
    """The configuration before the flags: the file, a preset's recommended settings, or the
    defaults."""
    if args.config:
        return load_config(args.config)
    if not Path(args.spec).exists():  # a preset id: train with its recommended settings
        from cnn_core.presets import load_preset

        return config_from_dict(load_preset(args.spec).config, source=f"preset {args.spec}")
    return TrainConfig()


# The flags that set a training setting (their `dest`), and the setting's name.
SETTING_FLAGS = {
    "epochs": "epochs",
    "limit": "limit",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "test_split": "test_split",
    "fine_tune": "fine_tune",
    "devices": "devices",
}
OFF_FLAGS = ("fine_tune",)  # the settings whose flag takes the setting's `off` number for null
# How the command line writes a setting that an error message tells to change.
SPELLED = {"epochs": "--epochs", "fine_tune": "--fine-tune N (0 = off)"}


def _with_flags(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """`config` with the settings the flags give (`--epochs`, ..., then each `--set`), validated
    once, as a configuration file is."""
    changes = {
        name: getattr(args, dest)
        for dest, name in SETTING_FLAGS.items()
        if getattr(args, dest) is not None
    }
    for name in OFF_FLAGS:  # why: null, given as the Train page gives it ("0 = off")
        if name in changes and changes[name] == setting_named(name).off:
            changes[name] = None
    for name, value in args.set:
        if name in changes:
            raise ConfigError(f"the command line gives {name} twice; give it once.")
        changes[name] = value
    if not changes:
        return config
    return config_with_settings(config, changes, source="the command line", spelled=SPELLED)


def _setting_pair(text: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: VALUE read as JSON (10, 0.5, true, null, "x"), else as a string."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. epochs=5")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


def _lr_find(args: argparse.Namespace) -> int:
    from cnn_core.files import atomic_write_json

    if not 10 <= args.steps <= 10_000:
        raise UserError(f"--steps must be from 10 to 10,000; got {args.steps}.")
    spec = resolve_spec(args.spec)
    config = _base_config(args)
    changes = {"batch_size": args.batch_size, "limit": args.limit, "seed": args.seed}
    config = config.with_changes(**changes)
    from cnn_core.training.lr_find import find_lr

    if not args.json:
        say(f"learning-rate range test: {args.steps} batches, 1e-07 to 10", file=sys.stderr)
    finding = find_lr(spec, config, args.data, steps=args.steps)
    if args.out:
        atomic_write_json(Path(args.out), finding.to_dict())
    if args.json:
        say(json.dumps(finding.to_dict()))
        return 0
    say(
        f"suggested learning rate: {finding.suggestion:.2g} (steepest fall of the loss); "
        f"a tenth of the lowest point's: {finding.minimum_tenth:.2g}; configured: "
        f"{finding.configured:g} ({finding.steps} batches, {finding.seconds:.0f} s)"
    )
    if finding.note:
        say(f"note: {finding.note}", file=sys.stderr)
    return 0


def _search(args: argparse.Namespace) -> int:
    from cnn_core.runs import slug
    from cnn_core.search import SearchRequest, default_space, load_space, run_search

    spec = resolve_spec(args.spec)
    config = _base_config(args)
    space = load_space(args.space, spec, config) if args.space else default_space(spec, config)
    name = args.name or f"{slug(spec.name)}-{time.strftime('%Y%m%d-%H%M%S')}"

    def report(line: str) -> None:
        if not args.json:
            say(line, flush=True)

    request = SearchRequest(
        name,
        spec,
        config,
        space,
        data_source=args.data,
        trials=args.trials,
        timeout=args.timeout,
        root=args.runs_dir,
    )
    result = run_search(request, say=report)
    if args.json:
        say(json.dumps(result.to_dict()))
        return 0
    best = result.best
    if best is None:
        say(f"search {name}: no trial completed ({len(result.trials)} ended); see the runs.")
        return UserError.exit_code
    say(
        f"search {name}: best trial {best.number}, validation accuracy {best.value:.4f}, run "
        f"{best.run}, {best.values}"
    )
    return 0


def _resume(args: argparse.Namespace) -> int:
    from cnn_core.api import resume_run

    run = open_run(args.run_dir, root=_root_of(args))
    outcome = resume_run(run, more_epochs=args.epochs, detach=args.detach)
    return _report(run, run.status(), as_json=args.json, outcome=outcome)


def _stop(args: argparse.Namespace) -> int:
    from cnn_core.api import request_stop

    run = open_run(args.run_dir, root=_root_of(args))
    status = request_stop(run)
    if args.json:
        say(json.dumps({**_run_summary(run, status), "stop_requested": status.active}))
    elif status.active:
        say(f"{run.name}: stop requested; it stops within one batch and keeps its model.")
    else:
        say(f"{run.name} is not training (state: {status.state}); nothing to stop.")
    return 0


def _runs(args: argparse.Namespace) -> int:
    found = list_runs(args.runs_dir)
    summaries = [_run_summary(run, run.status()) for run in found]
    if args.json:
        say(json.dumps({"runs": summaries}))
        return 0
    if not summaries:
        say(f"no runs in {runs_root(args.runs_dir)}")
    for item in summaries:
        best = item["best_val_accuracy"]
        best_text = f"{best:.4f}" if best is not None else "-"
        problem = f"  ({item['error']})" if item["error"] and item["state"] != "completed" else ""
        say(
            f"{item['name']:<44} {item['state']:<11} "
            f"{item['epochs_completed']:>4}/{item['epochs_target']:<4} best val {best_text}"
            f"{problem}"  # a damaged or failed run says why, on its own line
        )
    return 0


def _warn_about(report: EvaluationReport) -> None:
    """An evaluation's problems that did not stop it: not stored, not taken by MLflow."""
    for problem in (report.not_saved, report.not_logged):
        if problem:
            print(f"warning: {problem}", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> int:
    from cnn_core.datasets import check_source
    from cnn_core.evaluate import evaluate_run

    run = open_run(args.run_dir, root=_root_of(args))
    data = check_source(args.data) if args.data else None  # absolute: stored with the report
    report = evaluate_run(run, data_source=data, force=args.force)
    _warn_about(report)
    if args.json:
        say(json.dumps(report.to_dict()))
        return 0
    say(
        f"{run.name}: test accuracy {report.accuracy:.4f}, loss {report.loss:.4f} "
        f"on {report.n:,} images"
    )
    for row in report.per_class:
        say(
            f"  {row.name:<16} precision {row.precision:.3f}  recall {row.recall:.3f}  "
            f"F1 {row.f1:.3f}  support {row.support}"
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from cnn_core.predict import predict_images

    run = open_run(args.run_dir, root=_root_of(args))
    if args.top < 1:
        raise UserError("--top must be at least 1.")
    results = predict_images(run, [(path, Path(path)) for path in args.images], top=args.top)
    refused = 0
    for result in results:
        if result.error:
            refused += 1
        if args.json:
            say(json.dumps(result.to_dict()))
        elif result.error:
            say(f"{result.image}: {result.error}", file=sys.stderr)
        else:
            ranked = ", ".join(f"{name} {p:.1%}" for name, p in result.top)
            say(f"{result.image}: {ranked}")
    return 2 if refused else 0


def _export(args: argparse.Namespace) -> int:
    from cnn_core.deploy import ExportMismatchError, export_run

    run = open_run(args.run_dir, root=_root_of(args))
    try:
        report = export_run(run, format=args.format, out=args.out, quantize=args.quantize)
    except ExportMismatchError as exc:  # the figures of the failed proof, then the error
        if args.json:
            say(json.dumps(exc.report.to_dict()))
        raise
    if report.not_saved:
        say(f"warning: {report.not_saved}", file=sys.stderr)
    if args.json:
        say(json.dumps(report.to_dict()))
        return 0
    say(f"{run.name}: exported to {Path(report.out or args.out) / report.model_file}")
    say(report.summary())
    return 0


def _worker(args: argparse.Namespace) -> int:
    from cnn_core.runs import FollowingRun, adopt_claim, claim_run

    # Below the dashboard's priority: training takes every core it gets, and a starved
    # dashboard froze for seconds at each epoch's end. Alone on the machine it loses nothing.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    run = Run(Path(args.run_dir).resolve())
    distributed = _join_processes(args)
    if distributed:  # joined before the run is claimed: only the first process claims it
        from cnn_core.training.placement import process_layout

        try:
            _, index = process_layout()
        except Exception as exc:
            raise UserError(f"the processes of {run.name} could not join: {exc}") from exc
        if index:
            from cnn_core.train import train_run

            return train_run(FollowingRun(run.path, index), more_epochs=args.more_epochs).exit_code
    # Held until this process ends: it is how everyone else knows the run is alive. Another
    # process holding it (RunBusyError) ends this one before it writes anything.
    claim = adopt_claim(run, args.claim_fd) if args.claim_fd is not None else claim_run(run)
    with claim:
        if distributed:  # whoever started the processes scheduled them: no queue
            from cnn_core.train import train_run

            return train_run(run, more_epochs=args.more_epochs).exit_code
        return _train_in_turn(run, more_epochs=args.more_epochs)


def _train_in_turn(run: Run, *, more_epochs: int | None) -> int:
    """Wait for the run's turn and devices (`queue.waiting_turn`, no Keras yet), then import
    Keras, which sees only the GPUs the queue gave (`CUDA_VISIBLE_DEVICES`), and train."""
    from cnn_core.api import library_error
    from cnn_core.runs import fail_run
    from cnn_core.training.queue import waiting_turn

    with waiting_turn(run, more_epochs=more_epochs) as slot:
        if slot is None:  # stopped while it waited
            return 0
        try:
            from cnn_core.train import train_run
        except Exception as exc:  # e.g. the Keras backend is not installed: the run says so
            fail_run(run, library_error(exc))
            raise
        return train_run(run, more_epochs=more_epochs, slot=slot).exit_code


def _join_processes(args: argparse.Namespace) -> bool:
    """Whether this worker is one of several processes of one run; if so, tell Keras (its own
    environment variables, read by keras.distribution.initialize as Keras is imported)."""
    from cnn_core.backends import CLUSTER_ENV, DISTRIBUTED_ENV, keras_backend

    given = (args.coordinator, args.num_processes, args.process_id)
    if not args.cluster and all(value is None for value in given):
        return bool(os.environ.get(DISTRIBUTED_ENV) or os.environ.get(CLUSTER_ENV))
    if keras_backend() != "jax":
        raise UserError(
            "training one run in several processes needs Keras on JAX (Keras' distribution "
            "API): start every process with KERAS_BACKEND=jax (pip install jax)."
        )
    if args.cluster:
        os.environ[CLUSTER_ENV] = "1"
        return True
    if any(value is None for value in given):
        raise UserError("give --coordinator HOST:PORT, --num-processes N and --process-id I.")
    if not 0 <= args.process_id < args.num_processes:
        raise UserError(
            f"--process-id must be from 0 to {args.num_processes - 1} (--num-processes "
            f"{args.num_processes}); got {args.process_id}."
        )
    os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"] = args.coordinator
    os.environ[DISTRIBUTED_ENV] = str(args.num_processes)
    os.environ["KERAS_DISTRIBUTION_PROCESS_ID"] = str(args.process_id)
    return True


def _root_of(args: argparse.Namespace) -> Path | None:
    """The runs root: --runs-dir, else the folder of a run given by path, else the default."""
    if args.runs_dir:
        return Path(args.runs_dir)
    given = Path(args.run_dir)
    if len(given.parts) > 1 or given.is_absolute():
        return given.resolve().parent
    return None
