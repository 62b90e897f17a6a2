"""The network as a Graphviz diagram (DOT text): one box per layer, the shape on each arrow."""

from __future__ import annotations

from cnn_core.layers import format_shape
from cnn_core.shapes import Analysis
from cnn_core.spec import ModelSpec


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def network_dot(spec: ModelSpec, analysis: Analysis) -> str:
    """DOT source, top to bottom: input, each layer, the classifier head."""
    shape = format_shape(spec.input_shape)
    lines = [
        "digraph network {",
        "  rankdir=TB; nodesep=0.2; ranksep=0.25;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fd", color="#2f6fde", '
        'fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#666666"];',
        f'  input [label="Input\\n{shape}", fillcolor="#ffffff"];',
    ]
    previous = "input"
    problem_layers = {p.layer for p in analysis.problems}
    for info in analysis.layers:
        node = "head" if info.head else f"l{info.index}"
        title = info.description if info.head else f"{info.index + 1}. {info.description}"
        extra = f"\\n{info.params:,} params" if info.params else ""
        if info.frozen:  # BatchNormalization's statistics, a frozen backbone
            extra += f" ({info.frozen:,} frozen)"
        fill = ""
        if info.head:
            fill = ', fillcolor="#e8f5e9"'
        elif info.index in problem_layers:
            fill = ', fillcolor="#fdecea", color="#c62828"'
        lines.append(f'  {node} [label="{_label(title)}{extra}"{fill}];')
        lines.append(f'  {previous} -> {node} [label=" {shape}"];')
        previous = node
        shape = format_shape(info.output_shape)
    lines.append("}")
    return "\n".join(lines)
