"""`bench.scaling`'s arithmetic and its section of BENCHMARKS.md, on runs shaped as it records
them (the benchmark itself trains on CIFAR-10 for minutes: it is run by hand, not here)."""

from __future__ import annotations

import pytest

from bench.__main__ import scaling_section
from bench.scaling import summarize


def run(backend: str, devices: int, *, loss: float, seconds: list[float]) -> dict:
    return {
        "backend": backend,
        "devices": devices,
        "placement": f"{devices} CPU device{'s' if devices > 1 else ''}",
        "epoch_seconds": seconds,
        "images_per_second": 1000.0 * devices,
        "images_per_second_per_device": 1000.0,
        "loss": loss,
        "accuracy": 0.5,
    }


def test_a_case_pools_its_steady_epochs_and_keeps_how_far_its_twin_strays():
    case = summarize(
        run("jax", 2, loss=1.25, seconds=[9.0, 4.0, 6.0]),
        run("jax", 2, loss=1.0, seconds=[8.0, 5.0, 7.0]),
    )
    assert case["steady_epoch_seconds"] == 5.5  # first epochs (compiling) left out
    assert case["repeat_loss_difference"] == 0.25
    assert case["loss"] == 1.25 and case["images_per_second"] == 2000.0


@pytest.mark.parametrize("load", [0.5, 4.0])
def test_the_section_shows_each_case_the_gaps_and_whether_the_machine_was_shared(load, monkeypatch):
    monkeypatch.setattr("bench.__main__._cpus", lambda: 2)  # this machine's cores
    cases = {}
    for backend, ratio in (("jax", 0.8), ("tensorflow", 1.5)):
        one = run(backend, 1, loss=1.4, seconds=[4.0, 2.0])
        two = run(backend, 2, loss=1.414, seconds=[4.0, 2.0 * ratio])
        cases[f"{backend}_1"] = summarize(one, one)
        cases[f"{backend}_2"] = {
            **summarize(two, two),
            "loss_difference": 0.014,
            "accuracy_difference": 0.0,
            "epoch_ratio": ratio,
        }
    scaling = {"limit": 10_000, "epochs": 3, "batch_size": 64, "seed": 1, "cases": cases}
    scaling |= {"load_average_before": [load] * 3, "load_average_after": [load] * 3}
    text = "\n".join(scaling_section(scaling))
    assert "| tensorflow | 2 CPU devices | 3.00 | 4.0, 4.0 | 2,000 | 1,000 | 1.414000 |" in text
    assert (
        "tensorflow, 2 devices against 1: epoch time x1.50; final training loss differs by" in text
    )
    assert "JAX's DataParallel was not slower here" in text
    assert "bit for bit" in text and "over 375 steps" in text and "at most 1.0% of" in text
    assert ("The machine was shared" in text) == (load > 2)
