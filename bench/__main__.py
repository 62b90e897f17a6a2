"""The benchmark suite: `python -m bench` runs every benchmark on the real CIFAR-10 copy, each in
a fresh process, then writes BENCHMARKS.md from `bench/results/*.json` and the hand-written
readings in `bench/NOTES.md` (which BENCHMARKS.md itself must not hold: every run rewrites it).

    python -m bench                 # everything (about 25 minutes on a 2-core CPU)
    python -m bench --only training inference
    python -m bench --report        # only rewrite BENCHMARKS.md from the stored results
    python -m bench --only gpu      # on a GPU machine only (see bench/gpu.py); not in the suite
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

from bench.common import RESULTS, ROOT

SUITE = (
    "shapes",
    "dataset_load",
    "inference",
    "bookkeeping",
    "augment",
    "norm",
    "training",
    "memory",
    "archive_bombs",
    "ui",
    "live",
    "scaling",
    "roofline",
    "lr_find",
)
ON_DEMAND = ("gpu",)  # needs a GPU machine: run by name only


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


NOTES = ROOT / "bench" / "NOTES.md"  # hand-written readings, kept when BENCHMARKS.md is rewritten


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """`text` cut at its "## " headings: (heading, the lines under it); "" for the top."""
    found: list[tuple[str, list[str]]] = [("", [])]
    for line in text.split("\n"):
        if line.startswith("## "):
            found.append((line, []))
        else:
            found[-1][1].append(line)
    return found


def with_notes(generated: str, notes: str) -> str:
    """The generated report with each section of `notes` appended to the section of the same
    heading, or, where the report has none, placed after the section that precedes it in
    `notes` (its top, before the first heading, is the notes file's own explanation)."""
    sections = _sections(generated)
    headings = [heading for heading, _ in sections]
    after = ""
    for heading, body in _sections(notes)[1:]:
        while body and not body[-1].strip():
            body.pop()
        if heading in headings:
            lines = sections[headings.index(heading)][1]
            while lines and not lines[-1].strip():
                lines.pop()
            lines += [*body, ""]
        else:
            at = headings.index(after) + 1 if after in headings else len(sections)
            sections.insert(at, (heading, [*body, ""]))
            headings.insert(at, heading)
        after = heading
    out = []
    for heading, lines in sections:
        out += ([heading] if heading else []) + lines
    return "\n".join(out)


def report() -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m bench` on {time.strftime('%Y-%m-%d')}; machine: "
        f"{platform.machine()}, {_cpus()} CPU cores ({_cpu_model()}), no GPU, "
        f"Python {platform.python_version()}. "
        "Data: the JPEG copy of CIFAR-10 in `../shared/data/cifar10-jpeg.tar.gz`. Every ratio "
        "compares figures measured in the same run on the same machine.",
        "",
    ]
    training = load("training")
    if training:
        lines += training_section(training)
    rows = []
    inference = load("inference")
    if inference:
        for label, ms in inference["predict_ms"].items():
            goal = f"< 20 ms: {verdict(ms < 20)}" if "32x32" in label else ""
            rows.append(
                f"| single-image prediction, {label} (decode + model) | {ms:.2f} ms | {goal} |"
            )
        rows.append(
            f"| evaluation of the 10,000 test images | {min(inference['evaluate_seconds']):.2f} s "
            "| a few seconds: met |"
        )
    dataset = load("dataset_load")
    if dataset:
        best = min(dataset["cached_seconds"])
        rows.append(
            f"| first load of 60,000 JPEGs (decode + cache) | {dataset['first_seconds']:.2f} s | |"
        )
        rows.append(
            f"| cached dataset load, fresh process | {best:.3f} s | < 1 s: {verdict(best < 1)} |"
        )
    shapes = load("shapes")
    if shapes:
        rows.append(
            f"| shape inference, 30-layer spec | {shapes['median_ms']:.3f} ms | < 10 ms: "
            f"{verdict(shapes['median_ms'] < 10)} |"
        )
    ui = load("ui")
    if ui:
        cold = ui["cold_start_median_seconds"]
        rows.append(
            f"| server start to a usable Build page, real browser (median) | {cold:.2f} s | "
            f"< 2 s: {verdict(cold < 2)} |"
        )
        if "floor_cold_start_median_seconds" in ui:
            rows.append(
                "| the same for a one-button Streamlit app, alternated with ours (the floor) | "
                f"{ui['floor_cold_start_median_seconds']:.2f} s | |"
            )
        rows.append(
            f"| redraw after a Build edit (median) | {ui['build_edit_median_seconds'] * 1000:.0f}"
            " ms | |"
        )
        rows.append(
            "| an epoch on disk to its point on the Train chart (median) | "
            f"{ui['epoch_to_chart_median_seconds']:.2f} s | |"
        )
    screens = load("screenshots")  # python -m bench.screenshots: a real run, watched
    if screens:
        rows.append(
            "| epoch 1 on disk to its point on the Train chart, a real CIFAR-10 run training "
            f"beside it | {screens['first_epoch_to_chart_seconds']:.2f} s | |"
        )
    live = load("live")
    if live:
        first, old = live["first_estimate"], live["before_issue_11"]
        off = abs(first["said_s"] / first["left_s"] - 1)
        rows.append(
            f"| Train page's time left, {live['preset']} on CIFAR-10 "
            f"({live['training_seconds']:.0f} s of training): the first estimate, "
            f"{first['after_s']:.1f} s in | {first['said_s']:.0f} s (really "
            f"{first['left_s']:.0f} s); the formula before issue 11 said "
            f"{old['first_estimate']['said_s']:.0f} s | within 25%: {verdict(off < 0.25)} |"
        )
        error, before = live["estimates"]["median_abs_error"], old["estimates"]
        rows.append(
            f"| the same, median error of every estimate | {error:.0%} (before: "
            f"{before['median_abs_error']:.0%}, worst {before['max_error']:+.0%}) | "
            f"< 25%: {verdict(error < 0.25)} |"
        )
    if rows:
        lines += [
            "## Responsiveness (`bench.inference`, `.dataset_load`, `.shapes`, `.ui`, `.live`)",
            "",
            "| figure | measured | goal |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    memory = load("memory")
    if memory:
        lines += memory_section(memory)
    bombs = load("archive_bombs")
    if bombs:
        lines += bombs_section(bombs)
    bookkeeping = load("bookkeeping")
    if bookkeeping:
        epoch = min(bookkeeping["bare_epoch_seconds"], bookkeeping["recorded_epoch_seconds"])
        share = bookkeeping["recorder_seconds_per_epoch"] / epoch * 100
        lines += [
            "## Bookkeeping overhead (`python -m bench.bookkeeping`)",
            "",
            "Time spent inside the run recorder and its reporters "
            f"({bookkeeping.get('tracked', 'none')}: history, "
            "progress, status, the reporters' files and calls, checkpoint every "
            "epoch; stop and NaN checks every batch): "
            f"{bookkeeping['recorder_seconds_per_epoch'] * 1000:.0f} ms per epoch, "
            f"{share:.2f}% of an epoch of "
            f"{epoch:.2f} s ({bookkeeping['train_images']:,} images; the shorter of the "
            f"bare and recorded epochs, as a noisy bare epoch would flatter it); "
            f"goal < 3%: {verdict(share < 3)}. A/B epoch times, same "
            f"process: bare {bookkeeping['bare_epoch_seconds']:.2f} s, recorded "
            f"{bookkeeping['recorded_epoch_seconds']:.2f} s.",
            "",
        ]
    augment = sorted(RESULTS.glob("augment_*.json"))
    if augment:
        lines += [
            "## Augmentation cost per training step (`python -m bench.augment`)",
            "",
            "| backend | none | Keras RandomFlip + RandomTranslation | RandomShiftFlip | "
            "the feed's flips and shifts |",
            "| --- | --- | --- | --- | --- |",
        ]
        for path in augment:
            data = json.loads(path.read_text())
            none = data["none"]
            cells = [
                f"{data[k] * 1000:.0f} ms ({data[k] / none:.2f}x)" if k in data else "-"
                for k in ("none", "keras RandomFlip+RandomTranslation", "RandomShiftFlip", "feed")
            ]
            lines.append(f"| {path.stem.removeprefix('augment_')} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Measured on this machine's CPU for each backend installed (`KERAS_BACKEND=jax python "
            "-m bench.augment` for JAX); the feed's column is the step without augmentation plus "
            "the median time its numpy flips and shifts add to a batch. Training uses "
            "RandomShiftFlip where it is XLA-compiled (JAX, TensorFlow on a GPU) and the feed's "
            "where it is not (TensorFlow on a CPU), whichever is cheaper. On this CPU the same "
            "step takes about five times longer with JAX than with TensorFlow, which is why "
            "TensorFlow is the default backend.",
            "",
        ]
    norm = load("norm")
    if norm:
        lines += [
            "## BatchNormalization's cost per training step (`python -m bench.norm`)",
            "",
            "| preset | batch | Keras' BatchNormalization | ours, fused | ratio |",
            "| --- | --- | --- | --- | --- |",
        ]
        for preset, r in norm["presets"].items():
            lines.append(
                f"| {preset} | {r['batch']} | {r['keras'] * 1000:.1f} ms | "
                f"{r['fused'] * 1000:.1f} ms | {r['ratio']:.2f} |"
            )
        lines += [
            "",
            f"Median of {norm['steps']} interleaved training steps of each preset's model as its "
            "training builds it (augmentation, bfloat16 where faster, its optimizer), once with "
            "Keras' BatchNormalization and once with `cnn_core.fast_norm`'s, which trains "
            "through TensorFlow's fused kernel and is Keras' layer everywhere else.",
            "",
        ]
    scaling = load("scaling")
    if scaling:
        lines += scaling_section(scaling)
    roofline = load("roofline")
    if roofline:
        lines += roofline_section(roofline)
    found = load("lr_find")
    if found:
        lines += lr_find_section(found)
    lines += gpu_section(load("gpu"))
    return "\n".join(lines)


def lr_find_section(found: dict) -> list[str]:
    """The learning-rate finder's suggestion for the tutorial model beside its own 0.001."""
    lines = [
        "## The learning-rate finder on the tutorial model (`python -m bench.lr_find`)",
        "",
        "`cnn-workbench lr-find tutorial_cnn` on CIFAR-10 (Adam, batch 64, 100 batches from "
        "1e-7 to 10), one range test per seed:",
        "",
        "| seed | suggested (steepest fall) | a tenth of the lowest point's | the tutorial's own | "
        "seconds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in found["runs"]:
        lines.append(
            f"| {run['seed']} | {run['suggestion']:.2g} | {run['minimum_tenth']:.2g} | "
            f"{run['configured']:g} | {run['seconds']:.1f} |"
        )
    ratios = [run["suggestion"] / run["configured"] for run in found["runs"]]
    tenths = [run["minimum_tenth"] / run["configured"] for run in found["runs"]]
    lines += [
        "",
        f"The suggestions are {min(ratios):.1f}x to {max(ratios):.1f}x the tutorial's rate, and "
        f"a tenth of the lowest point's {min(tenths):.1f}x to {max(tenths):.1f}x. Whether the "
        "suggested rate trains better over 15 epochs is not measured here.",
        "",
    ]
    return lines


def roofline_section(roofline: dict) -> list[str]:
    """The measured peak of this CPU against what each preset's training achieves."""
    from bench.roofline import PASSES, pass_rate

    lines = [
        "## How close training comes to this CPU's limit (`python -m bench.roofline`)",
        "",
        f"Peak: the best of {len(roofline['peaks']) // 2} operations per precision, each timed "
        f"alone in TensorFlow (oneDNN) on {roofline['threads']} threads at batch "
        f'{roofline["batch"]}, best of 20 after warm-up; "training" is the forward pass and both '
        "backward passes of the convolution (6 FLOPs per multiply-add).",
        "",
        "| operation | float32 GFLOP/s | bfloat16 GFLOP/s |",
        "| --- | --- | --- |",
    ]
    by_name: dict[str, dict[str, float]] = {}
    for row in roofline["peaks"]:
        by_name.setdefault(row["operation"], {})[row["dtype"]] = row["gflops"]
    for name, rates in by_name.items():
        lines.append(f"| {name} | {rates['float32']:.0f} | {rates['bfloat16']:.0f} |")
    lines += [
        "",
        f"Each preset trained {roofline['epochs']} epochs on {roofline['limit']:,} images "
        "through `python -m cnn_core train` (steady epochs); its FLOPs per training image from "
        "our shape inference (6 x the forward multiply-adds):",
        "",
        "| preset | MFLOP per training image | images/s | achieved GFLOP/s | precision | "
        "share of the training peak |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in roofline["presets"].items():
        lines.append(
            f"| {name} | {r['training_mflop_per_image']:.1f} | {r['images_per_second']:,.0f} | "
            f"{r['achieved_gflops']:.0f} | {r['precision']} | {r['ratio']:.0%} of "
            f"{r['peak_gflops']:.0f} |"
        )
    ranked = sorted(roofline["presets"].values(), key=lambda r: r["training_mflop_per_image"])
    shares = [r["ratio"] for r in ranked]
    trend = ", higher for the presets with more FLOPs per image" if shares == sorted(shares) else ""
    timed = {name: r for name, r in roofline["presets"].items() if r.get("convolutions")}
    lines += convolution_lines(timed)
    lines += [
        "",
        f"Reading: a whole training step reaches {min(shares):.0%}-{max(shares):.0%} of the "
        f"peak its convolutions reach alone{trend}. ",
    ]
    if timed:
        steps = [r["convolution_step_seconds"] / r["step_seconds"] for r in timed.values()]
        weights = [
            pass_rate(r["convolutions"], PASSES[2]) / pass_rate(r["convolutions"], PASSES[0])
            for r in timed.values()
        ]
        lines[-1] += (
            f"The presets' own convolutions, each pass timed alone, take {min(steps):.0%}-"
            f"{max(steps):.0%} of their whole step; the rest goes to what runs between them "
            "(BatchNormalization, activations, pooling, augmentation, the loss, the optimizer's "
            "update of every weight, reading the batch). Their rates are below the peak's "
            "because their shapes are smaller (the first convolution has 3 input channels, the "
            "late ones 8x8 or 4x4 images), and the backward pass to the weights runs at "
            f"{min(weights):.0%}-{max(weights):.0%} of the forward rate on them: the part of "
            "the gap that is the library's kernels on this CPU, not the model."
        )
    else:
        lines[-1] += (
            "The rest of its time goes to what does not run at that rate: the first convolution "
            "(3 input channels), BatchNormalization, activations, pooling, the loss, the "
            "optimizer's update of every weight and reading the batch."
        )
    lines.append("")
    return lines


def convolution_lines(timed: dict) -> list[str]:
    """Each preset's convolutions, every pass timed alone, and their sum against the step."""
    from bench.roofline import PASSES

    if not timed:
        return []
    lines = [
        "",
        "Each preset's own convolutions, timed alone at its batch size and precision in each "
        "pass its training step runs (best of 10; the first convolution's input gets no "
        "gradient), in GFLOP/s:",
        "",
        "| preset | convolution | " + " | ".join(PASSES) + " |",
        "| --- | --- | " + " | ".join("---" for _ in PASSES) + " |",
    ]
    for name, r in timed.items():
        for row in r["convolutions"]:
            rates = [f"{row[p]['gflops']:.0f}" if p in row else "-" for p in PASSES]
            lines.append(f"| {name} | {row['shape']} | " + " | ".join(rates) + " |")
    lines += [
        "",
        "| preset | batch | convolutions alone, ms per step | whole step, ms | share |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in timed.items():
        alone, step = r["convolution_step_seconds"] * 1000, r["step_seconds"] * 1000
        lines.append(f"| {name} | {r['batch']} | {alone:.1f} | {step:.1f} | {alone / step:.0%} |")
    return lines


def scaling_section(scaling: dict) -> list[str]:
    """1 vs 2 virtual CPU devices per backend: speed, and how far the results stray."""
    cases = scaling["cases"]
    lines = [
        "## One device against two on this CPU (`python -m bench.scaling`)",
        "",
        f"The tutorial model through `python -m cnn_core train`, {scaling['limit']:,} CIFAR-10 "
        f"training images (`--limit`; 80% trained on, 20% validation), {scaling['epochs']} "
        f"epochs, global batch {scaling['batch_size']}, seed {scaling['seed']}, float32, the "
        "CPU split into two virtual devices (`CNN_CORE_CPU_DEVICES=2`) for every run and "
        "`--devices` 1 or 2; each case twice in mirrored order (A B C D D C B A), each in a "
        "fresh process. Load average before and after: "
        + ", ".join(f"{x:.2f}" for x in scaling["load_average_before"])
        + "; "
        + ", ".join(f"{x:.2f}" for x in scaling["load_average_after"])
        + ".",
        "",
        "| backend | devices | s/epoch (median after the first) | first epochs | images/s | "
        "per device | final training loss | final training accuracy | loss, run 2 - run 1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases.values():
        firsts = ", ".join(f"{run['epoch_seconds'][0]:.1f}" for run in case["runs"])
        lines.append(
            f"| {case['backend']} | {case['placement']} | {case['steady_epoch_seconds']:.2f} | "
            f"{firsts} | {case['images_per_second']:,.0f} | "
            f"{case['images_per_second_per_device']:,.0f} | {case['loss']:.6f} | "
            f"{case['accuracy']:.4f} | {case['repeat_loss_difference']:.1e} |"
        )
    lines.append("")
    for backend in ("jax", "tensorflow"):
        two = cases.get(f"{backend}_2")
        if two:
            lines.append(
                f"- {backend}, 2 devices against 1: epoch time x{two['epoch_ratio']:.2f}; final "
                f"training loss differs by {two['loss_difference']:.1e}, accuracy by "
                f"{two['accuracy_difference']:.4f}."
            )
    repeats = max(case["repeat_loss_difference"] for case in cases.values())
    busy = max(scaling["load_average_before"][0], scaling["load_average_after"][0])
    jax = cases.get("jax_2", {}).get("epoch_ratio", 1.0)
    relative = max(
        (
            case["loss_difference"] / case["loss"]
            for case in cases.values()
            if "loss_difference" in case
        ),
        default=0.0,
    )
    lines += [
        "",
        "Reading: two virtual devices on two cores add no compute, so these figures are what "
        "distributing a step costs, not a speed-up; per-device throughput here is a share of "
        "the same two cores. TensorFlow's MirroredStrategy (a replica per device, gradients "
        "summed across them every step) makes its epoch slower"
        + (
            "; JAX's DataParallel was not slower here, possibly because XLA's CPU backend "
            "keeps one device's step on fewer threads than there are cores, so that two devices "
            "keep both busier (or by the noise below)"
            if jax < 1
            else ", and so does JAX's DataParallel"
        )
        + ". Every run repeated its twin of the same case "
        + ("bit for bit" if repeats == 0 else f"to within {repeats:.1e} in loss")
        + ", so the gap between 1 and 2 devices is no run-to-run noise. We read it as the "
        "order of floating-point sums (one device sums the batch's gradient in one order, two "
        "sum halves and then the halves), which tests/test_placement.py bounds at 1e-4 over 24 "
        "steps of a tiny network and which compounds here over "
        f"{scaling['epochs'] * scaling['limit'] * 4 // 5 // scaling['batch_size']:,} steps into "
        f"the differences above, at most {relative:.1%} of the final loss; this benchmark does "
        "not separate that from any other difference between the two paths."
        + (
            f" The machine was shared with other work (load average up to {busy:.1f} on "
            f"{_cpus()} cores), so the epoch times swing from run to run, and the ratios are "
            "rough."
            if busy > (_cpus() or 1)
            else ""
        ),
    ]
    return [*lines, ""]


def gpu_section(gpu: dict | None) -> list[str]:
    """`bench.gpu`'s table and goals where it ran on a GPU, else how to run it."""
    lines = ["## GPU (`python -m bench.gpu`, on a GPU machine)", ""]
    if not gpu:
        return [
            *lines,
            "Not measured: no GPU machine was lent to the task that wrote this file. "
            "`bench/gpu.py` is ready for one (JAX, no TensorFlow, no network): on a machine "
            'with `pip install "jax[cuda12]" "keras>=3.15.1" pillow numpy` and this '
            "repository, `PYTHONPATH=$PWD KERAS_BACKEND=jax python -m bench.gpu --data "
            "PATH/cifar10-jpeg.tar.gz`, then its table goes here. It trains "
            "`tutorial_cnn` and `resnet_gpu` on 1 device and on all, runs the bare Keras "
            "tutorial script on the same GPU, and judges the goals: the tutorial model at least "
            "as fast as the bare Keras tutorial; the ResNet preset at 93% test accuracy within "
            "60 s of training on one H100/H200. Its CPU smoke test (`--quick`) runs in "
            "tests/test_bench_gpu.py.",
            "",
        ]
    from bench.gpu import table

    device = gpu["device"]
    return [
        *lines,
        f"{device['count']} {device['kind']} device(s), {device['model'] or 'model unknown'}.",
        "",
        table(gpu["runs"], gpu["bare_tutorial"]),
        "",
        "Goals: the tutorial model at least as fast per epoch as the bare Keras tutorial: "
        f"{gpu['goals']['tutorial_vs_bare_keras']}; the ResNet preset at 93% test accuracy "
        f"within 60 s of training on one H100/H200: {gpu['goals']['resnet_93_in_60s']}.",
        "",
    ]


def bombs_section(bombs: dict) -> list[str]:
    """Peak RSS of `python -m cnn_core data` on each archive bomb of issue 13 and on photos."""
    goal = bombs["goal_mb"]
    before = load("archive_bombs_before") or {}
    earlier = {case["case"]: case for case in before.get("cases", [])}
    lines = [
        "## Archives with bounded cost (`python -m bench.archive_bombs`)",
        "",
        "`python -m cnn_core data ARCHIVE --json` in a fresh process for each archive, with the "
        "default limits; peak RSS of that process (the largest of it and its decode workers). "
        f"Goal: under {goal:,} MB, refused or loaded. Before: the same cases measured on commit "
        f'{before.get("code", "-")} (`--code`), before the limits and the spool; "-": not run '
        "there (the issue measured 4.0 GB for the zip of zeros).",
        "",
        "| archive | its size | peak RSS | seconds | before | outcome |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in bombs["cases"]:
        said = case["message"].removeprefix("error: ").replace("|", "/")
        size = case["archive_bytes"]
        was = earlier.get(case["case"])
        was_text = f"{was['peak_rss_mb']:,.0f} MB, {was['seconds']:.1f} s" if was else "-"
        shown = f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
        lines.append(
            f"| {case['case']} | {shown} | {case['peak_rss_mb']:,.0f} MB "
            f"({verdict(case['peak_rss_mb'] < goal)}) | {case['seconds']:.1f} | {was_text} | "
            f"{said} |"
        )
    return [*lines, ""]


def memory_section(memory: dict) -> list[str]:
    """Peak RSS of the data path at N photos, and the feed's CIFAR-10 epoch time."""
    lines = ["## Memory of the data path (`python -m bench.memory`)", ""]
    phases = memory.get("phases")
    if phases:
        n, size, gb = memory["images"], memory["size"], memory["pixel_bytes"] / 1e9
        goal = 1600 * n / 40_000  # the goal, 1.6 GB at 40,000 images, scaled to this run
        lines += [
            f"{n:,} synthetic {size}x{size} PNG photos in 4 class folders ({gb:.2f} GB of pixels; "
            f"{memory['png_bytes'] / 1e9:.2f} GB of PNG, a {memory['cache_bytes'] / 1e9:.2f} GB "
            "cache), each phase in a fresh process; peak RSS of that process (decode workers, "
            "forked processes, reported apart). Goal: below 1.6 GB at 40,000 images.",
            "",
            "| phase | peak RSS | workers' peak | seconds | goal |",
            "| --- | --- | --- | --- | --- |",
        ]
        names = {
            "decode": "first load: decode and write the cache",
            "cached": "cached load (memory-mapped)",
            "feed": "one epoch of a small model, fed by `Feed` from the cache",
            "arrays": "the same epoch fed as before the feed (rows copied, `fit` on arrays)",
        }
        for key, label in names.items():
            row = phases[key]
            seconds = row.get("epoch_seconds", row["load_seconds"])
            ok = f"< {goal / 1000:.2f} GB: {verdict(row['peak_rss_mb'] < goal)}"
            lines.append(
                f"| {label} | {row['peak_rss_mb']:,.0f} MB | {row['worker_peak_rss_mb']:,.0f} MB "
                f"| {seconds:.2f} | {ok if key in ('decode', 'feed') else ''} |"
            )
        lines.append("")
        scale = 100_000 * 224 * 224 * 3 / memory["pixel_bytes"]  # 100,000 at 224x224, by pixels
        decode, feed, cached = phases["decode"], phases["feed"], phases["cached"]
        row_scale = (224 * 224) / (
            size * size
        )  # chunks in flight grow with the image, not the count
        decode_gb = (
            cached["peak_rss_mb"] + (decode["peak_rss_mb"] - cached["peak_rss_mb"]) * row_scale
        ) / 1000
        lines += [
            "100,000 photos at 224x224, scaled from this run: a cache of "
            f"{100_000 * 224 * 224 * 3 / 1e9:.1f} GB on disk (in the cache folder, "
            "`$CNN_CORE_CACHE`); the first decode about "
            f"{decode['load_seconds'] * scale / 60:.0f} minutes here (more for photos larger "
            "than 224x224, which are decoded at their own size first) at a peak RSS that does "
            "not grow with the number of photos, only with their size through the decode chunks "
            f"in flight: about {decode_gb:.1f} GB; then training epochs at the feed's peak RSS, "
            "which does not grow with the images either (about "
            f"{feed['peak_rss_mb'] / 1000:.1f} GB with this small model), and about "
            f"{feed['epoch_seconds'] * scale:.0f} s per epoch for this small model.",
            "",
        ]
    cifar = memory.get("cifar10")
    if cifar:
        times = cifar["epoch_seconds"]
        lines += [
            "CIFAR-10, tutorial model, one process, epochs alternated in A B B A blocks "
            f"({len(cifar.get('block_ratios', []))} blocks; medians): fed by `Feed` "
            f"from the memory-mapped cache {statistics.median(times['feed']):.2f} s "
            f"({', '.join(f'{t:.2f}' for t in times['feed'])}), `model.fit` on in-RAM arrays "
            f"{statistics.median(times['arrays']):.2f} s "
            f"({', '.join(f'{t:.2f}' for t in times['arrays'])}); ratio (median of the blocks' "
            f"ratios, {', '.join(f'{r:.3f}' for r in cifar.get('block_ratios', []))}) "
            f"{cifar['ratio']:.3f}"
            + (
                f"; CPU time (every thread) ratio {cifar['cpu_ratio']:.3f} (blocks "
                f"{', '.join(f'{r:.3f}' for r in cifar['cpu_block_ratios'])})"
                if "cpu_ratio" in cifar
                else ""
            )
            + f"; fastest epochs {min(times['feed']):.2f} s and {min(times['arrays']):.2f} s "
            f"(ratio {min(times['feed']) / min(times['arrays']):.3f}). "
            f"Goal <= 1.02: {verdict(cifar['ratio'] <= 1.02)}. Cached load of the 60,000 "
            f"images in that process: {cifar['cached_load_seconds']:.3f} s (goal well under a "
            f"second: {verdict(cifar['cached_load_seconds'] < 1)}).",
            "",
        ]
    return lines


def training_section(training: dict) -> list[str]:
    bare, mixed, plain = (
        training["bare_tutorial"],
        training["engine_tutorial"],
        training["engine_tutorial_float32"],
    )
    scripts = bare.get("runs", [bare])  # one run of the tutorial script before 2026-12-03
    bare_epoch = bare.get("steady_epoch_seconds") or _steady(bare["epoch_seconds"])
    epochs_of = len(mixed["runs"][0]["epoch_seconds"])

    def times(runs: list[dict]) -> str:
        return "; ".join(", ".join(f"{t:.1f}" for t in run["epoch_seconds"]) for run in runs)

    lines = [
        "## Training cost and time to accuracy (`python -m bench.training`)",
        "",
        (
            f"The tutorial script's 15-epoch run ran {len(scripts)} times (first, in the middle "
            "and last; its figures below are their mean), "
            if len(scripts) > 1
            else "The tutorial script's 15-epoch run ran once, in the middle; "
        )
        + "the tutorial model through our engine ran twice, and each CPU preset on seeds 1 and "
        "2, once before and once after the middle run of the script, in mirrored order (seed 3 "
        "after them): this is a shared virtual machine whose speed drifts by up to half from one "
        "minute to the next. A preset's wall time is its whole `train --evaluate` command "
        "(process start and the test-set evaluation included, with the test-time flips and "
        "shifts the preset asks for, as the tutorial script's own evaluate is; data cached), the "
        "mean of its seeds; its accuracy the worst seed's, on the 10,000 test images.",
        "",
        "| figure | tutorial script | ours | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
        "| seconds per epoch, tutorial model (median after the first), our engine as it runs "
        f"by default ({mixed['precision']}) | {bare_epoch:.2f} | "
        f"{mixed['steady_epoch_seconds']:.2f} | {training['epoch_ratio']:.2f} | <= 1.0: "
        f"{verdict(training['epoch_ratio'] <= 1.0)} |",
        f"| the same with our engine in float32 | {bare_epoch:.2f} | "
        f"{plain['steady_epoch_seconds']:.2f} | {training['epoch_ratio_float32']:.2f} | "
        f"<= 1.0: {verdict(training['epoch_ratio_float32'] <= 1.0)} |",
        f"| peak memory (MB), tutorial model | {bare['peak_rss_mb']:.0f} | "
        f"{max(mixed['peak_rss_mb'], plain['peak_rss_mb']):.0f} | "
        f"{training['memory_ratio']:.2f} | <= 0.5: {verdict(training['memory_ratio'] <= 0.5)} |",
    ]
    for name, got in training["presets"].items():
        goal = got["goal"]
        earlier = f", the run of {got['measured_on']}" if "measured_on" in got else ""
        lines += [
            f"| wall time (s): tutorial 15 epochs vs our `{name}` preset ({got['precision']})"
            f"{earlier} | {got.get('tutorial_wall_seconds', bare['wall_seconds']):.0f} | "
            f"{got['wall_seconds']:.0f} | "
            f"{got['time_ratio']:.2f} | <= {goal['time_ratio']:g}: "
            f"{verdict(got['time_ratio'] <= goal['time_ratio'])} |",
            f"| test accuracy, `{name}` worst of seeds "
            + ", ".join(str(seed) for seed in got["seeds"])
            + f" (spread {got['accuracy_spread']:.4f}) | "
            f"{got.get('tutorial_test_accuracy', bare['test_accuracy']):.4f} | "
            f"{got['test_accuracy']:.4f} | | >= {goal['test_accuracy']:.2f}, spread <= "
            f"{goal['spread']:.2f}: "
            + verdict(
                got["test_accuracy"] >= goal["test_accuracy"]
                and got["accuracy_spread"] <= goal["spread"]
            )
            + " |",
        ]
    lines += [
        f"| test accuracy, tutorial model through our engine ({epochs_of} epochs), "
        f"{mixed['precision']} / float32 | | {mixed['test_accuracy']:.4f} / "
        f"{plain['test_accuracy']:.4f} | | |",
        "",
    ]
    for name, got in training["presets"].items():
        earlier = (
            f" (not run this time: the figures of the run of {got['measured_on']}, its ratio "
            f"against that run's tutorial script, {got['tutorial_wall_seconds']:.0f} s)"
            if "measured_on" in got
            else ""
        )
        lines.append(
            f"`{name}`{earlier}: wall times "
            + ", ".join(f"{run['wall_seconds']:.0f} s" for run in got["runs"])
            + " (test accuracy "
            + ", ".join(f"{a:.4f}" for a in got["test_accuracies"])
            + "); epoch times (s) "
            + times(got["runs"])
            + "."
        )
    lines += [
        "Epoch times (s) of the tutorial model through our engine "
        + times(mixed["runs"])
        + ", in float32 "
        + times(plain["runs"])
        + "; the tutorial script "
        + times(scripts)
        + " (wall times "
        + ", ".join(f"{run['wall_seconds']:.0f} s" for run in scripts)
        + "). The tutorial script computes in float32, as written; our engine's mixed precision "
        '"auto" computes in bfloat16 where that is faster: GPUs, and TensorFlow on CPUs with '
        "AVX512-BF16 or AMX, like this one.",
        "",
    ]
    return lines


def _steady(seconds: list[float]) -> float:
    values = sorted(seconds[1:] if len(seconds) > 1 else seconds)
    return values[len(values) // 2]


def _cpu_model() -> str:
    """The CPU's name and whether it has native bfloat16 (which mixed precision "auto" uses)."""
    from cnn_core.builder import cpu_has_bfloat16

    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            name = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name
            )
    except OSError:
        pass
    return f"{name}, {'with' if cpu_has_bfloat16() else 'without'} native bfloat16"


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--only", nargs="+", choices=SUITE + ON_DEMAND, help="run only these benchmarks"
    )
    parser.add_argument("--report", action="store_true", help="only rewrite BENCHMARKS.md")
    args = parser.parse_args()
    if not args.report:
        for name in args.only or SUITE:
            print(f"== bench.{name}", flush=True)
            subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT, check=True)
    (ROOT / "BENCHMARKS.md").write_text(with_notes(report(), NOTES.read_text()))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
