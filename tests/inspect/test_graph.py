"""to_dot / render (minigrad_q/inspect/graph.py): the DOT text holds every op of the graph, parses as
DOT (a small parser of the DOT subset below), shows shapes, dtypes and, after backward, gradient norms;
render calls Graphviz when it is on PATH and otherwise writes the .dot file and says how to render it."""

import re
import shutil
import subprocess

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import nn
from minigrad_q.core import topological_order
from minigrad_q.inspect import graph
from minigrad_q.inspect.graph import render, to_dot

# ---------------------------------------------------------------- a parser for the DOT that to_dot writes
# graph  := "digraph" (ID | STRING)? "{" stmt* "}"
# stmt   := (ID "=" (ID | STRING) | ("graph" | "node" | "edge") attrs | ID attrs? | ID "->" ID attrs?) ";"
# attrs  := "[" (ID "=" (ID | STRING) ","?)* "]"
TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<arrow>->)|(?P<id>[A-Za-z_][A-Za-z0-9_.]*|-?[0-9.]+)'
                   r"|(?P<punct>[{}\[\]=,;]))", re.S)


def tokenize(text):
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = TOKEN.match(text, position)
        assert match, f"cannot tokenize DOT at {text[position:position + 30]!r}"
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def unquote(string):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), string[1:-1])


def parse_dot(text):
    """{node id: attrs}, [(tail, head, attrs)] of a digraph; AssertionError where it is not valid DOT
    (unbalanced braces or brackets, a statement without its ';', an edge to an undeclared node ...)."""
    tokens = tokenize(text)
    depth = 0
    for kind, value in tokens:
        depth += (value in "{[") - (value in "}]") if kind == "punct" else 0
        assert depth >= 0, "a closing brace comes before its opening one"
    assert depth == 0, "unbalanced braces or brackets"
    position = 0

    def take(kind=None, value=None):
        nonlocal position
        assert position < len(tokens), "DOT ends too early"
        token = tokens[position]
        assert kind is None or token[0] == kind, f"expected {kind}, got {token}"
        assert value is None or token[1] == value, f"expected {value!r}, got {token}"
        position += 1
        return token[1]

    def attrs():
        found = {}
        take("punct", "[")
        while tokens[position][1] != "]":
            key = take("id")
            take("punct", "=")
            kind, value = tokens[position]
            assert kind in ("id", "string"), f"attribute {key} has no value"
            position_value = take()
            found[key] = unquote(position_value) if kind == "string" else value
            if tokens[position][1] == ",":
                take()
        take("punct", "]")
        return found

    assert take("id") == "digraph"
    if tokens[position][0] in ("id", "string"):
        take()
    take("punct", "{")
    nodes, edges = {}, []
    while tokens[position][1] != "}":
        first = take("id")
        following = tokens[position]
        if following == ("punct", "="):
            take()
            take()
        elif first in ("graph", "node", "edge"):
            attrs()
        elif following[0] == "arrow":
            take("arrow")
            head = take("id")
            edges.append((first, head, attrs() if tokens[position][1] == "[" else {}))
        else:
            assert first not in nodes, f"node {first} declared twice"
            nodes[first] = attrs() if tokens[position][1] == "[" else {}
        take("punct", ";")
    take("punct", "}")
    assert position == len(tokens), "text after the closing brace"
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes, f"edge {tail} -> {head} has an undeclared endpoint"
    return nodes, edges


def labels(text):
    nodes, _ = parse_dot(text)
    return {ident: attrs["label"] for ident, attrs in nodes.items()}


def ops_in(text):
    return sorted(label.split("\n")[0] for ident, label in labels(text).items() if ident.startswith("op"))


def test_the_checker_rejects_broken_dot():
    good = 'digraph g {\n  a [label="x"];\n  b [label="y"];\n  a -> b;\n}\n'
    parse_dot(good)
    for broken in (good.replace("}", ""), good.replace("a -> b;", "a -> c;"), good.replace('"x"];', '"x"]'),
                   good.replace('"x"', '"x')):
        with pytest.raises(AssertionError):
            parse_dot(broken)


# ---------------------------------------------------------------- to_dot
def named(name, values, dtype=mq.float32):
    tensor = mq.tensor(values, dtype=dtype, requires_grad=True)
    tensor.name = name
    return tensor


def known_graph():
    """loss = sum(relu(x @ w + b) * 2) / (mean(x) + 3): ops MatMul, Add, Relu, Mul, Sum, Mean, Add, Div."""
    x = named("x", np.arange(6.0).reshape(2, 3) - 2)
    w = named("w", np.linspace(-1, 1, 12).reshape(3, 4))
    b = named("b", np.linspace(0, 1, 4), dtype=mq.float64)
    loss = ((x @ w + b).relu() * 2).sum() / (x.mean() + 3)
    return loss, (x, w, b)


def test_dot_holds_every_op_of_a_known_graph_once():
    loss, _ = known_graph()
    text = to_dot(loss)
    assert ops_in(text) == sorted(["MatMul", "Add", "Relu", "Mul", "Sum", "Mean", "Add", "Div"])
    engine_ops = sorted(fn.name for fn in topological_order(loss.creator))
    assert ops_in(text) == engine_ops


def test_edges_follow_the_data_flow():
    loss, (x, w, b) = known_graph()
    nodes, edges = parse_dot(to_dot(loss))
    name = {ident: attrs["label"].split("\n")[0] for ident, attrs in nodes.items()}
    pairs = sorted((name[tail], name[head]) for tail, head, _ in edges)
    assert pairs == sorted([("x", "MatMul"), ("w", "MatMul"), ("MatMul", "Add"), ("b", "Add"), ("Add", "Relu"),
                            ("Relu", "Mul"), ("Mul", "Sum"), ("Sum", "Div"), ("x", "Mean"), ("Mean", "Add"),
                            ("Add", "Div"), ("Div", "output")])
    assert sum(1 for label in name.values() if label == "x") == 1, "a leaf used twice is one node"


def test_labels_show_shapes_and_dtypes():
    loss, _ = known_graph()
    found = labels(to_dot(loss))
    by_name = {label.split("\n")[0]: label for label in found.values()}
    assert by_name["x"] == "x\n(2, 3) float32"
    assert by_name["b"] == "b\n(4,) float64"
    assert by_name["MatMul"] == "MatMul\n(2, 4) float32"
    assert by_name["Relu"] == "Relu\n(2, 4) float64"  # x @ w (float32) + b (float64) promotes
    assert by_name["output"] == "output\n() float64"


def test_gradient_norms_appear_after_backward():
    loss, (x, w, b) = known_graph()
    assert "grad norm" not in to_dot(loss)
    loss.backward()
    by_name = {label.split("\n")[0]: label for label in labels(to_dot(loss)).values()}
    for leaf in (x, w, b):
        expected = f"grad norm {float(np.linalg.norm(leaf.grad.numpy())):.4g}"
        assert by_name[leaf.name].split("\n")[2] == expected
    assert ops_in(to_dot(loss)) == sorted(["MatMul", "Add", "Relu", "Mul", "Sum", "Mean", "Add", "Div"])


def test_retained_intermediate_gradients_show_on_their_op():
    x = mq.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    hidden = x.relu()
    hidden.retain_grad()
    (hidden * 3).sum().backward()
    relu = [label for label in labels(to_dot((hidden * 3).sum())).values() if label.startswith("Relu")]
    assert relu == [f"Relu\n(1, 3) float32\ngrad norm {np.sqrt(27):.4g}"]


def test_params_name_a_models_leaves():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    loss = model(mq.randn(5, 3)).sum()
    text = to_dot(loss, params=dict(model.named_parameters()))
    names = {label.split("\n")[0] for label in labels(text).values()}
    assert {"0.weight", "0.bias", "2.weight", "2.bias"} <= names
    assert "0.weight\n(4, 3) float32" in labels(text).values()


def test_multi_output_ops_label_their_outputs():
    x = mq.randn(4, 3, requires_grad=True)
    top, bottom = mq.split(x, 2)
    nodes, edges = parse_dot(to_dot((top * bottom).sum()))
    split = [label for label in (a["label"] for a in nodes.values()) if label.startswith("Split")]
    assert split == ["Split\nout 0: (2, 3) float32\nout 1: (2, 3) float32"]
    assert sorted(attrs.get("label", "") for _, _, attrs in edges if attrs) == ["out 0", "out 1"]


def test_names_are_escaped():
    name = 'say "hi" \\ back\nslash {x}; [y]'
    x = named(name, [1.0, 2.0])
    text = to_dot((x * x).sum(), name='my "graph"')
    leaf = [label for label in labels(text).values() if label.startswith("say")]
    assert leaf == ['say "hi" \\ back\nslash {x}; [y]\n(2,) float32']


def test_a_tensor_without_a_graph_is_one_node():
    nodes, edges = parse_dot(to_dot(mq.ones(2, 2)))
    assert list(nodes.values()) == [{"label": "output\n(2, 2) float32", "shape": "box", "style": "filled",
                                     "fillcolor": "lightblue"}]
    assert edges == []


def test_deep_graphs_need_no_recursion():
    x = mq.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    assert ops_in(to_dot(y)).count("Mul") == 3000


def test_to_dot_wants_a_tensor():
    with pytest.raises(TypeError, match="to_dot: expected a Tensor, got list"):
        to_dot([1.0])


# ---------------------------------------------------------------- render
def test_render_without_graphviz_writes_the_dot_file_and_says_how(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    loss, _ = known_graph()
    message = render(loss, tmp_path / "net.png")
    written = tmp_path / "net.dot"
    assert written.read_text() == to_dot(loss)
    assert not (tmp_path / "net.png").exists()
    assert "apt-get install graphviz" in message and f"dot -Tpng {written} -o {tmp_path / 'net.png'}" in message
    assert "-Tsvg" in render(loss, tmp_path / "net.svg")


def test_render_runs_dot_when_it_is_on_path(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, input, capture_output):
        calls.append((command, input))
        with open(command[-1], "wb") as file:
            file.write(b"\x89PNG fake")
        return subprocess.CompletedProcess(command, 0, b"", b"")

    monkeypatch.setattr(graph.shutil, "which", lambda name: "/opt/graphviz/dot" if name == "dot" else None)
    monkeypatch.setattr(graph.subprocess, "run", fake_run)
    loss, _ = known_graph()
    target = tmp_path / "sub" / "net.png"
    assert render(loss, target) == f"wrote {target}"
    assert calls == [(["/opt/graphviz/dot", "-Tpng", "-o", str(target)], to_dot(loss).encode())]
    assert target.read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "sub" / "net.dot").exists()


def test_render_reports_a_failing_dot_and_keeps_the_text(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: "/opt/graphviz/dot")
    monkeypatch.setattr(graph.subprocess, "run",
                        lambda command, input, capture_output: subprocess.CompletedProcess(command, 1, b"", b"syntax error"))
    with pytest.raises(RuntimeError, match=r"dot -Tpdf failed \(exit 1\): syntax error; the graph is in .*g\.dot"):
        render("digraph { a; }", tmp_path / "g.pdf")
    assert (tmp_path / "g.dot").read_text() == "digraph { a; }"


def test_render_dot_suffix_writes_dot_text(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: pytest.fail("dot must not run for a .dot path"))
    assert render("digraph { a; }", tmp_path / "g.dot") == f"wrote {tmp_path / 'g.dot'}"
    assert (tmp_path / "g.dot").read_text() == "digraph { a; }"


def test_render_rejects_other_things(tmp_path):
    with pytest.raises(TypeError, match="render: expected a Tensor or DOT text, got int"):
        render(3, tmp_path / "g.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (Debian package graphviz)")
def test_render_with_real_graphviz(tmp_path):
    loss, _ = known_graph()
    target = tmp_path / "net.png"
    render(loss, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
