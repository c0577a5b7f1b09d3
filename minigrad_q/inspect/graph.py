"""The autograd graph as Graphviz DOT text, and rendering it.

``to_dot(tensor)`` walks the graph that made `tensor` (the Functions the engine recorded, reached
through each Function's ``next_edges``) and writes one node per Function — its op name and the shape
and dtype of each output — and one node per leaf tensor that requires grad — its name (the tensor's
``name``, or the key it has in `params`), shape, dtype, and, once a backward has filled ``.grad``, the
gradient's norm ‖grad‖₂. The tensor itself is the last node (its shape, dtype, and gradient norm when
it has one). Edges point the way data flows: from a leaf or a producing op to the op that consumed it.
Outputs kept with ``retain_grad()`` show their gradient norm on the op that made them.

Only what the engine records appears: inputs that do not require grad (constants, data) and non-tensor
arguments leave no trace in the graph, so they are not drawn. The walk is iterative (any depth), and
works after backward too (backward frees saved arrays, not the graph's edges).

``render(tensor_or_dot, path)`` runs Graphviz's ``dot -T<format>`` (the format is `path`'s suffix) when
``dot`` is on PATH; without it, it writes ``<path stem>.dot`` and returns how to render that file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from ..core import Function, Tensor

__all__ = ["to_dot", "render"]

RENDER_HINT = "apt-get install graphviz (Debian/Ubuntu; or see graphviz.org); then: dot -T{fmt} {dot} -o {path}"


def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, line breaks as DOT's centred \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n") + '"'


def _shape(shape: Any) -> str:
    return str(tuple(int(d) for d in shape))


def _norm(tensor: Tensor | None) -> str | None:
    """‖tensor‖₂ as text (computed on the tensor's device, read once), None without a tensor."""
    if tensor is None:
        return None
    data = tensor.data
    value = float(tensor.xp.linalg.norm(data.reshape(-1).astype("float64", copy=False))) if data.size else 0.0
    return f"grad norm {value:.4g}"


def _describe(tensor: Tensor, name: str | None) -> str:
    lines = [name] if name else []
    lines.append(f"{_shape(tensor.shape)} {tensor.dtype}")
    grad = _norm(tensor.grad)
    if grad:
        lines.append(grad)
    return "\n".join(lines)


def _op_label(fn: Function) -> str:
    lines = [fn.name]
    for index, (shape, dtype) in enumerate(fn.output_meta):
        prefix = f"out {index}: " if len(fn.output_meta) > 1 else ""
        lines.append(f"{prefix}{_shape(shape)} {dtype}")
    for index, ref in sorted((fn.retained_outputs or {}).items()):
        kept = ref()
        grad = _norm(kept.grad) if kept is not None else None
        if grad:
            lines.append(f"out {index} {grad}" if len(fn.output_meta) > 1 else grad)
    return "\n".join(lines)


def to_dot(tensor: Tensor, params: dict[str, Tensor] | None = None, name: str = "minigrad_q") -> str:
    """DOT text of the graph that made `tensor` (module docstring). `params` ({name: tensor}, e.g.
    ``dict(model.named_parameters())``) names leaves that have no ``name`` of their own."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    names = {id(t): key for key, t in (params or {}).items()}
    node_ids: dict[int, str] = {}
    nodes: list[str] = []
    edges: list[str] = []

    def node_id(obj: Any, kind: str) -> tuple[str, bool]:
        """(the DOT id of obj, whether it was new)."""
        key = id(obj)
        if key in node_ids:
            return node_ids[key], False
        node_ids[key] = f"{kind}{len(node_ids)}"
        return node_ids[key], True

    def leaf(t: Tensor) -> str:
        ident, new = node_id(t, "tensor")
        if new:
            label = _describe(t, t.name or names.get(id(t)))
            nodes.append(f"  {ident} [label={_quote(label)}, shape=box, style=filled, fillcolor=lightblue];")
        return ident

    def op(fn: Function) -> str:
        ident, new = node_id(fn, "op")
        if new:
            nodes.append(f"  {ident} [label={_quote(_op_label(fn))}, shape=box, style=\"rounded,filled\", fillcolor=lightgrey];")
            stack.append(fn)
        return ident

    stack: list[Function] = []
    root = tensor.creator
    output, _ = node_id(tensor, "tensor")
    root_label = _describe(tensor, tensor.name or names.get(id(tensor)) or "output")
    fill = "palegreen" if root is not None else "lightblue"
    nodes.append(f"  {output} [label={_quote(root_label)}, shape=box, style=filled, fillcolor={fill}];")
    if root is not None:
        label = f" [label={_quote(f'out {tensor._output_index}')}]" if len(root.output_meta) > 1 else ""
        edges.append(f"  {op(root)} -> {output}{label};")
    while stack:
        fn = stack.pop()
        target = node_ids[id(fn)]
        for edge in fn.next_edges:
            if edge is None:
                continue
            if type(edge) is tuple:
                producer, index = edge
                label = f" [label={_quote(f'out {index}')}]" if len(producer.output_meta) > 1 else ""
                edges.append(f"  {op(producer)} -> {target}{label};")
            else:
                edges.append(f"  {leaf(edge)} -> {target};")
    header = [f"digraph {_quote(name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];',
              '  edge [fontname="Helvetica", fontsize=9];']
    return "\n".join(header + nodes + edges + ["}"]) + "\n"


def render(tensor_or_dot: Tensor | str, path: str | os.PathLike[str]) -> str:
    """Render a tensor's graph (or DOT text) to `path` with Graphviz, in the format its suffix names
    (.png, .svg, .pdf, ...; .dot writes the text itself). Without ``dot`` on PATH it writes
    ``<path stem>.dot`` instead. Returns a one-line message: what was written, and in the fallback how to
    render it. A failing ``dot`` raises RuntimeError with its message (the .dot file is kept)."""
    text = to_dot(tensor_or_dot) if isinstance(tensor_or_dot, Tensor) else tensor_or_dot
    if not isinstance(text, str):
        raise TypeError(f"render: expected a Tensor or DOT text, got {type(tensor_or_dot).__name__}")
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    fmt = suffix[1:].lower() or "png"
    dot_path = stem + ".dot"
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    if fmt == "dot":
        _write(dot_path, text)
        return f"wrote {dot_path}"
    if not suffix:
        path = stem + ".png"
    executable = shutil.which("dot")
    if executable is None:
        _write(dot_path, text)
        return (f"Graphviz's dot is not on PATH, so wrote {dot_path} instead of {path}; to render it: "
                + RENDER_HINT.format(fmt=fmt, dot=dot_path, path=path))
    result = subprocess.run([executable, f"-T{fmt}", "-o", path], input=text.encode("utf-8"), capture_output=True)
    if result.returncode != 0:
        _write(dot_path, text)
        message = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"render: dot -T{fmt} failed (exit {result.returncode}): {message}; the graph is in {dot_path}")
    return f"wrote {path}"


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
