"""The learning-rate finder's suggestion for the tutorial model on CIFAR-10, beside the tutorial's
own 0.001 (issue 17): `cnn-workbench lr-find tutorial_cnn` on the real data, as a user runs it,
on three seeds (the range test's batches are drawn by the seed).

    python -m bench.lr_find
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import ROOT, cifar_source, write_result

SEEDS = (0, 1, 2)


def main() -> None:
    source = cifar_source()
    found = []
    for seed in SEEDS:
        command = [sys.executable, "-m", "cnn_core", "lr-find", "tutorial_cnn", "--data", source]
        command += ["--seed", str(seed)]
        done = subprocess.run(
            [*command, "--json"], capture_output=True, text=True, cwd=ROOT, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        keys = ("suggestion", "minimum_tenth", "configured", "steps", "seconds")
        found.append({"seed": seed, **{key: result[key] for key in keys}})
        print(found[-1], flush=True)
    write_result("lr_find", {"preset": "tutorial_cnn", "runs": found})


if __name__ == "__main__":
    main()
