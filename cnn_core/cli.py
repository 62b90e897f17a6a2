"""The command line: `python -m cnn_core COMMAND ...`, for headless use.

Exit codes everywhere: 0 success, 2 bad input (a one-line message on stderr), 1 unexpected
failure (one line too; set CNN_CORE_DEBUG=1 to see the traceback). Commands that do not train
never import Keras, so they answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from cnn_core.errors import SpecError, UserError
from cnn_core.shapes import Analysis, analyze
from cnn_core.spec import ModelSpec, load_spec

PROG = "python -m cnn_core"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `... | head`
        return 0
    except Exception as exc:  # a bug: say so in one line, keep the traceback for who asks
        if os.environ.get("CNN_CORE_DEBUG"):
            traceback.print_exc()
        print(
            f"unexpected error: {type(exc).__name__}: {exc} (this is a bug; set CNN_CORE_DEBUG=1 "
            "to see where it happened)",
            file=sys.stderr,
        )
        return 1


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
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(run=_data)
    return parser


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
            print(json.dumps({**doc, "layers": [], "total_params": 0}))
        raise
    analysis = analyze(spec)
    if args.json:
        print(json.dumps(analysis.to_dict()))
    else:
        print(format_table(spec, analysis))
    for problem in analysis.problems:
        print(f"error: {problem.message}", file=sys.stderr)
    return 0 if analysis.valid else 2


def format_table(spec: ModelSpec, analysis: Analysis) -> str:
    h, w, c = spec.input_shape
    rows = [("#", "layer", "output", "params")]
    for info in analysis.layers:
        position = "" if info.index is None else str(info.index + 1)
        shape = "x".join(str(d) for d in info.output_shape) if info.output_shape else "?"
        rows.append((position, info.description, shape, f"{info.params:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{spec.name}: {h}x{w}x{c} input, {spec.num_classes} classes"]
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

    print(export_code(resolve_spec(args.spec)), end="")
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
        print(json.dumps({"presets": doc}))
        return 0
    for p in presets:
        params = analyze(p.spec).total_params
        print(f"{p.id:<14} {p.spec.name} ({params:,} parameters)")
        print(f"{'':<14} {p.spec.description}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from cnn_core.datasets import load_dataset

    start = time.perf_counter()
    data = load_dataset(args.source, image_size=tuple(args.size), channels=args.channels)
    seconds = time.perf_counter() - start
    summary = {
        "source": data.source,
        "train": len(data.y_train),
        "test": len(data.y_test),
        "image_shape": list(data.x_train.shape[1:]),
        "classes": list(data.class_names),
        "skipped": data.skipped,
        "warnings": list(data.warnings),
        "seconds": round(seconds, 3),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    for warning in data.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{data.source}: {summary['train']:,} training and {summary['test']:,} test images of "
        f"{'x'.join(map(str, summary['image_shape']))}, {len(data.class_names)} classes "
        f"({', '.join(data.class_names)}); loaded in {seconds:.2f} s"
    )
    return 0
