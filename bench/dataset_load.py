"""Dataset loading: the first (decoding) load and a cached load of the real CIFAR-10 copy,
each in a fresh process with an empty cache folder.

    python -m bench.dataset_load
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from bench.common import ROOT, cifar_source, write_result

PROBE = (
    "import json, time; t = time.perf_counter(); from cnn_core.datasets import load_dataset; "
    "d = load_dataset({source!r}); print(json.dumps({{'seconds': time.perf_counter() - t, "
    "'train': len(d.y_train), 'test': len(d.y_test)}}))"
)


def load_once(source: str, cache: str) -> dict:
    env = {**os.environ, "CNN_CORE_CACHE": cache, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(source=source)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    source = cifar_source()
    with tempfile.TemporaryDirectory() as cache:
        first = load_once(source, cache)
        cached = [load_once(source, cache)["seconds"] for _ in range(3)]
    print(f"{source}: {first['train']:,} + {first['test']:,} images")
    print(f"first load (decode + cache): {first['seconds']:.2f} s")
    print(f"cached load, fresh process:  {min(cached):.3f} s best, {max(cached):.3f} s worst of 3")
    write_result(
        "dataset_load",
        {"source": source, "first_seconds": first["seconds"], "cached_seconds": cached},
    )


if __name__ == "__main__":
    main()
