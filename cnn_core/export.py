"""Code export: spec -> a standalone, readable Python script that rebuilds the model with Keras.

The script needs only `keras` (any backend). It prints the very `KerasNode`s the builder uses,
so the exported model has the same layers, names, shapes and parameter count as ours (with Keras'
own augmentation layers, as our builder uses them where training is not XLA-compiled). A kind
whose layer is one of ours (a pretrained backbone) writes its own plain-Keras lines instead, through
its registry hook `LayerKind.code`: the same network, weights, freezing and input range.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from cnn_core.augment import Augmentation
from cnn_core.builder import INPUT_NAME, model_name, model_nodes
from cnn_core.layers import HEAD_NAME, KINDS, KerasNode, format_shape
from cnn_core.shapes import analyze
from cnn_core.spec import ModelSpec


def export_code(spec: ModelSpec, *, augmentation: Augmentation | None = None) -> str:
    """The script's text; raises `SpecError` if the spec cannot be built."""
    if augmentation is not None and augmentation.alternate_flip:
        # the script has no feed to alternate them: its model mirrors at random, as Keras does
        augmentation = replace(augmentation, alternate_flip=False)
    steps = model_nodes(spec, augmentation=augmentation)
    analysis = analyze(spec)
    h, w, c = spec.input_shape
    lines = [
        f'"""{_doc_safe(spec.name)}: a Keras model exported from CNN Workbench.',
        "",
        f"Input: {format_shape(spec.input_shape)} images as raw 0..255 pixels. Output: the "
        f"probabilities of {spec.num_classes} classes.",
        f"{analysis.total_params:,} parameters. Run this file to print a summary; import "
        "build_model() to train it.",
        '"""',
        "",
        "import keras",
        "from keras import layers",
        "",
        "",
        "def build_model() -> keras.Model:",
        f'    inputs = keras.Input(shape=({h}, {w}, {c}), dtype="uint8", name="{INPUT_NAME}")',
        "    x = inputs",
    ]
    for index, nodes in steps:
        if index is not None:
            info = analysis.layers[index]
            shape = format_shape(info.output_shape)
            title = f"    # Layer {index + 1}: {info.description}"
            figures = f"-> {shape}, {info.params:,} params"
            if len(title) + len(figures) < 99:
                lines += ["", f"{title} {figures}"]
            else:  # a long description: the figures on a line of their own
                lines += ["", title, f"    #   {figures}"]
            write = KINDS[info.type].code
            if write is not None:  # a kind that is no plain Keras layer writes its own lines
                in_shape = analysis.layers[index - 1].output_shape if index else spec.input_shape
                lines += [f"    {line}" for line in write(info.resolved, nodes[-1].name, in_shape)]
                continue
        elif nodes[0].name == HEAD_NAME:
            lines += ["", "    # Classifier head: one probability per class"]
        elif nodes[0].name.startswith("augment_"):
            lines += ["", "    # Augmentation: random changes, active only while training"]
        elif nodes[0].name == "rescale":
            lines += ["", "    # Pixels 0..255 -> 0..1"]
        lines += _step_lines(nodes)
    lines += [
        f"    return keras.Model(inputs, x, name={_literal(model_name(spec))})",
        "",
        "",
        'if __name__ == "__main__":',
        "    build_model().summary()",
        "",
    ]
    return "\n".join(lines)


def _step_lines(nodes: list[KerasNode]) -> list[str]:
    """Assign each node's output to `x` where it flows straight on, else to a named variable."""
    refs = Counter(name for node in nodes for name in node.inputs)
    lines = []
    if refs["@in"] > 1:
        lines.append("    block_input = x")
    prefix = nodes[-1].name + "_"
    variables = {"@in": "block_input" if refs["@in"] > 1 else "x"}
    for i, node in enumerate(nodes):
        flows_on = i + 1 < len(nodes) and refs[node.name] == 1 and node.name in nodes[i + 1].inputs
        last = i == len(nodes) - 1
        var = "x" if last or flows_on else node.name.removeprefix(prefix)
        args = [variables[name] for name in node.inputs]
        call = args[0] if len(args) == 1 else "[" + ", ".join(args) + "]"
        kwargs = _kwargs(node)
        line = f"    {var} = layers.{node.cls}({', '.join(kwargs)})({call})"
        if len(line) > 99:  # one keyword per line, as a formatter would
            body = "".join(f"        {part},\n" for part in kwargs)
            line = f"    {var} = layers.{node.cls}(\n{body}    )({call})"
        lines.append(line)
        variables[node.name] = var
    return lines


def _kwargs(node: KerasNode) -> list[str]:
    parts = []
    for key, value in node.kwargs.items():
        default = node.defaults.get(key)
        if type(value) is type(default) and value == default:
            continue  # left out where it is what Keras assumes, for readability
        if node.cls == "Rescaling" and key == "scale":
            parts.append("scale=1 / 255")
            continue
        parts.append(f"{key}={_literal(value)}")
    parts.append(f"name={_literal(node.name)}")
    return parts


def _literal(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        value = value[0]  # a square window reads as Keras' own shorthand: kernel_size=3
    return json.dumps(value) if isinstance(value, str) else repr(value)  # double quotes


def _doc_safe(text: str) -> str:
    return text.replace("\\", "/").replace('"""', "'''")
