"""Shape inference speed: `analyze` on a 30-layer spec, as the Build page calls it on every edit.

python -m bench.shapes
"""

from __future__ import annotations

import statistics
import time

from bench.common import write_result
from cnn_core.shapes import analyze
from cnn_core.spec import LayerSpec, ModelSpec


def thirty_layer_spec() -> ModelSpec:
    layers = []
    for stage, filters in enumerate((32, 64, 128)):
        for _ in range(2):
            layers += [
                LayerSpec("Conv2D", {"filters": filters, "kernel_size": 3, "padding": "same"}),
                LayerSpec("BatchNormalization"),
                LayerSpec("Activation", {"activation": "relu"}),
            ]
        layers.append(LayerSpec("ResidualBlock", {"filters": filters}))
        if stage < 2:
            layers.append(LayerSpec("MaxPooling2D", {"pool_size": 2}))
    layers += [
        LayerSpec("SpatialDropout2D", {"rate": 0.1}),
        LayerSpec("GlobalAveragePooling2D"),
        LayerSpec("BatchNormalization"),
        LayerSpec("Dense", {"units": 256, "activation": "relu"}),
        LayerSpec("Dropout", {"rate": 0.3}),
        LayerSpec("Dense", {"units": 128, "activation": "relu"}),
        LayerSpec("Dropout", {"rate": 0.3}),
    ]
    return ModelSpec(name="Thirty layers", layers=tuple(layers))


def main() -> None:
    spec = thirty_layer_spec()
    assert len(spec.layers) == 30 and analyze(spec).valid
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        analyze(spec)
        times.append(time.perf_counter() - start)
    median_ms, worst_ms = statistics.median(times) * 1e3, max(times) * 1e3
    print(f"analyze(30-layer spec): median {median_ms:.3f} ms, worst {worst_ms:.3f} ms (2000 runs)")
    write_result("shapes", {"layers": 30, "median_ms": median_ms, "max_ms": worst_ms})


if __name__ == "__main__":
    main()
