"""`bench.training`'s verdict on the CPU presets and its section of BENCHMARKS.md, on runs shaped
as it records them (the benchmark itself trains on CIFAR-10 for many minutes: it is run by hand,
not here)."""

from __future__ import annotations

from bench.__main__ import training_section
from bench.training import judged, tutorial_runs


def run(accuracy: float, wall: float, seed: int = 1) -> dict:
    return {
        "epoch_seconds": [20.0, 15.0, 15.0],
        "test_accuracy": accuracy,
        "precision": "bfloat16 mixed",
        "peak_rss_mb": 900.0,
        "wall_seconds": wall,
        "run_dir": "runs/x",
        "seed": seed,
    }


def engine(precision: str = "bfloat16 mixed") -> dict:
    """The tutorial model through our engine, as `combined` records its two runs."""
    return {
        "runs": [run(0.64, 40.0), run(0.64, 40.0)],
        "steady_epoch_seconds": 6.0,
        "peak_rss_mb": 1200.0,
        "test_accuracy": 0.64,
        "precision": precision,
    }


def section(tutorial: dict, presets: dict) -> str:
    """BENCHMARKS.md's training section for a run with `tutorial` (the script) and `presets`."""
    training = {
        "bare_tutorial": tutorial,
        "engine_tutorial": engine(),
        "engine_tutorial_float32": engine(),
        "presets": presets,
        "epoch_ratio": 0.6,
        "epoch_ratio_float32": 0.6,
        "memory_ratio": 0.32,
    }
    return "\n".join(training_section(training))


def test_a_preset_meets_its_goal_only_on_every_seed_in_time_and_within_a_point():
    tutorial = 130.0
    good = [run(0.853, 120.0, 1), run(0.858, 125.0, 2), run(0.861, 128.0, 3)]
    verdict = judged("fast_cpu", good, tutorial)
    assert verdict["met"] and verdict["test_accuracy"] == 0.853  # the worst seed
    assert verdict["seeds"] == [1, 2, 3] and abs(verdict["accuracy_spread"] - 0.008) < 1e-9
    assert abs(verdict["time_ratio"] - 373 / 3 / 130) < 1e-9  # the mean wall time
    one_short = [run(0.849, 120.0, 1), *good[1:]]
    assert not judged("fast_cpu", one_short, tutorial)["met"]
    slow = [run(0.86, 140.0, seed) for seed in (1, 2, 3)]
    assert not judged("fast_cpu", slow, tutorial)["met"]
    scattered = [run(0.85, 120.0, 1), run(0.87, 120.0, 2), run(0.86, 120.0, 3)]
    assert not judged("fast_cpu", scattered, tutorial)["met"]  # 2 points apart
    # best_cpu's goal: 90% in three times the tutorial's time
    assert judged("best_cpu", [run(0.905, 380.0, s) for s in (1, 2, 3)], tutorial)["met"]
    assert not judged("best_cpu", [run(0.905, 400.0, s) for s in (1, 2, 3)], tutorial)["met"]


def test_the_section_shows_each_preset_against_the_tutorial_script():
    tutorial = {
        "epoch_seconds": [12.0, 10.0, 10.0],
        "test_accuracy": 0.70,
        "wall_seconds": 130.0,
        "peak_rss_mb": 3800.0,
    }
    fast = judged("fast_cpu", [run(0.80, 120.0, s) for s in (1, 2, 3)], 130.0)
    text = section(tutorial, {"fast_cpu": fast})
    assert "| wall time (s): tutorial 15 epochs vs our `fast_cpu` preset" in text
    assert "| 130 | 120 | 0.92 | <= 1: met |" in text
    assert "| 0.7000 | 0.8000 | | >= 0.85, spread <= 0.01: **not met** |" in text
    assert "`fast_cpu`: wall times 120 s, 120 s, 120 s" in text


def test_hand_written_notes_survive_a_rewritten_report():
    from bench.__main__ import NOTES, with_notes

    generated = "# Benchmarks\n\nintro\n\n## A (`a`)\n\n| x |\n\n## B\n\nb figures\n"
    notes = "# about\n\nkept out\n\n## A (`a`)\n\nA reading.\n\n## Only here\n\nIts table.\n"
    merged = with_notes(generated, notes)
    assert merged.index("| x |") < merged.index("A reading.") < merged.index("## Only here")
    assert merged.index("## Only here") < merged.index("## B") and "kept out" not in merged
    assert with_notes(generated, "") == generated
    assert "## Training cost" in NOTES.read_text()  # the shipped notes file is read


def test_the_roofline_reading_states_a_trend_only_where_the_shares_follow_the_flops():
    from bench.__main__ import roofline_section

    def roofline(*presets: tuple[str, float, float]) -> dict:
        rows = {
            name: {
                "training_mflop_per_image": mflop,
                "images_per_second": 1000.0,
                "achieved_gflops": mflop,
                "precision": "bfloat16",
                "ratio": ratio,
                "peak_gflops": 800.0,
            }
            for name, mflop, ratio in presets
        }
        peaks = [
            {"operation": "conv", "dtype": dtype, "gflops": 800.0}
            for dtype in ("float32", "bfloat16")
        ]
        return {
            "peaks": peaks,
            "presets": rows,
            "epochs": 3,
            "limit": 10_000,
            "threads": 2,
            "batch": 256,
        }

    rising = "\n".join(roofline_section(roofline(("a", 50.0, 0.2), ("b", 400.0, 0.5))))
    assert "reaches 20%-50% of the peak" in rising and "more FLOPs per image" in rising
    mixed = roofline(("a", 50.0, 0.4), ("b", 140.0, 0.2), ("c", 400.0, 0.5))
    mixed_text = "\n".join(roofline_section(mixed))
    assert "reaches 20%-50% of the peak" in mixed_text and "more FLOPs per image" not in mixed_text


def test_the_roofline_reading_weighs_each_presets_own_convolutions_against_its_step():
    from bench.__main__ import roofline_section

    def run(gflops: float, seconds: float) -> dict:
        return {"gflops": gflops, "seconds": seconds}

    first = {"layer": "c1", "shape": "32x32x3->32", "batch": 256, "dtype": "bfloat16"}
    first |= {"forward": run(100.0, 0.001), "backward to the weights": run(50.0, 0.002)}
    second = {"layer": "c2", "shape": "16x16x32->64", "batch": 256, "dtype": "bfloat16"}
    second |= {
        "forward": run(400.0, 0.001),
        "backward to the input": run(400.0, 0.001),
        "backward to the weights": run(200.0, 0.002),
    }
    preset = {
        "training_mflop_per_image": 100.0,
        "images_per_second": 1000.0,
        "achieved_gflops": 100.0,
        "precision": "bfloat16",
        "ratio": 0.3,
        "peak_gflops": 800.0,
        "batch": 256,
        "step_seconds": 0.0125,
        "convolutions": [first, second],
        "convolution_step_seconds": 0.0075,
    }
    peaks = [{"operation": "conv", "dtype": d, "gflops": 800.0} for d in ("float32", "bfloat16")]
    roofline = {"peaks": peaks, "presets": {"p": preset}, "epochs": 3, "limit": 10_000}
    text = "\n".join(roofline_section({**roofline, "threads": 2, "batch": 64}))
    assert "| p | 32x32x3->32 | 100 | - | 50 |" in text  # the pixels get no gradient
    assert "| p | 256 | 7.5 | 12.5 | 60% |" in text
    assert "take 60%-60% of their whole step" in text
    # forward: 0.5 GFLOP in 2 ms; backward to the weights: the same FLOPs in 4 ms
    assert "runs at 50%-50% of the forward rate" in text


def test_the_presets_are_judged_against_the_mean_of_the_tutorial_scripts_runs():
    def script(wall: float, epochs: list[float]) -> dict:
        return {
            "epoch_seconds": epochs,
            "test_accuracy": 0.70,
            "wall_seconds": wall,
            "peak_rss_mb": 3800.0,
        }

    bare = tutorial_runs(
        [
            script(120.0, [14.0, 10.0, 11.0]),
            script(150.0, [15.0, 12.0, 13.0]),
            script(135.0, [14.0, 9.0, 30.0]),
        ]
    )
    assert (
        bare["wall_seconds"] == 135.0 and bare["steady_epoch_seconds"] == 11.5
    )  # first epochs out
    fast = judged("fast_cpu", [run(0.86, 130.0, s) for s in (1, 2, 3)], bare["wall_seconds"])
    assert fast["met"]  # 130 s is over the first run's 120 s but under the mean
    training = {
        "bare_tutorial": bare,
        "engine_tutorial": engine(),
        "engine_tutorial_float32": engine("float32"),
        "presets": {"fast_cpu": fast},
        "epoch_ratio": 0.52,
        "epoch_ratio_float32": 0.52,
        "memory_ratio": 0.32,
    }
    text = "\n".join(training_section(training))
    assert "ran 3 times (first, in the middle and last" in text
    assert "| 135 | 130 | 0.96 | <= 1: met |" in text
    assert "(wall times 120 s, 150 s, 135 s)" in text
    assert "| 11.50 | 6.00 | 0.52 |" in text


def test_a_partial_rerun_keeps_the_other_presets_with_their_own_runs_tutorial():
    from bench.training import carried

    tutorial = {
        "epoch_seconds": [12.0, 10.0],
        "test_accuracy": 0.69,
        "wall_seconds": 284.0,
        "peak_rss_mb": 3800.0,
    }
    best = judged("best_cpu", [run(0.89, 1040.0, s) for s in (1, 2, 3)], 284.0)
    old_fast = judged("fast_cpu", [run(0.86, 315.0, s) for s in (1, 2, 3)], 284.0)
    earlier = {
        "machine": {"date": "2026-12-03"},
        "bare_tutorial": tutorial,
        "presets": {"fast_cpu": old_fast, "best_cpu": best},
    }
    kept = carried(earlier, ["fast_cpu"])
    assert list(kept) == ["best_cpu"]  # the rerun's own fast_cpu replaces the old one
    assert kept["best_cpu"]["measured_on"] == "2026-12-03"
    assert abs(kept["best_cpu"]["tutorial_wall_seconds"] - 284.0) < 1e-9
    assert carried(None, ["fast_cpu"]) == {}
    gone = {**earlier, "presets": {**earlier["presets"], "old_cpu": best}}
    assert "old_cpu" not in carried(gone, ["fast_cpu"])  # no goal any more: not kept
    # carried again by a later partial run, it keeps its first run's date and tutorial
    again = {"machine": {"date": "2026-12-09"}, "bare_tutorial": tutorial, "presets": kept}
    assert carried(again, ["fast_cpu"])["best_cpu"]["measured_on"] == "2026-12-03"

    fast = judged("fast_cpu", [run(0.855, 290.0, s) for s in (1, 2, 3)], 310.0)
    text = section(
        {**tutorial, "wall_seconds": 310.0, "test_accuracy": 0.70}, {"fast_cpu": fast, **kept}
    )
    assert "`fast_cpu` preset (bfloat16 mixed) | 310 | 290 | 0.94 | <= 1: met |" in text
    # best_cpu's row names its run and shows that run's tutorial time, not this run's
    assert "`best_cpu` preset (bfloat16 mixed), the run of 2026-12-03 | 284 | 1040 | 3.66 |" in text
    assert "(spread 0.0000) | 0.6900 | 0.8900 |" in text
    assert "`best_cpu` (not run this time: the figures of the run of 2026-12-03" in text
