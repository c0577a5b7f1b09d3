"""The backward pass: one walk over the graph in reverse topological order.

Gradients of fan-out are summed, reduced to each input's shape (undoing
broadcasting) and cast to its dtype; tensor hooks run when a tensor's gradient
is complete; saved arrays are freed after a node's backward unless
``retain_graph=True``. Iterative: graph depth is limited only by memory.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .function import Function, check_finite, check_saved_versions
from .grad_mode import set_grad_enabled, state
from .tensor import Tensor


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf), weighted by `gradient`, into every leaf's ``.grad``."""
    if not root.requires_grad:
        raise RuntimeError(
            f"backward: the tensor {root.shape} does not require grad and has no creator; "
            "did you create its inputs with requires_grad=True (and outside mq.no_grad())?"
        )
    grad = _root_gradient(root, gradient)
    if root.creator is None:
        _accumulate_leaf(root, grad, fresh=False)
        return
    with set_grad_enabled(False):
        _run(root.creator, root._output_index, grad, retain_graph)


def _root_gradient(root: Tensor, gradient: Any) -> Any:
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for a one-element output, got shape {root.shape}; "
                "pass gradient= (a tensor of that shape)"
            )
        return root.xp.ones(root.shape, dtype=root.dtype)
    data = gradient.data if isinstance(gradient, Tensor) else backend.asarray(gradient, device=root.device)
    if data.shape != root.shape:
        raise RuntimeError(f"backward: gradient has shape {data.shape}, but the output has shape {root.shape}")
    if backend.device_of(data) != root.device:
        raise RuntimeError(f"backward: gradient is on {backend.device_of(data)}, the output on {root.device}")
    return data.astype(root.dtype, copy=False)


def topological_order(root: Function) -> list[Function]:
    """Every Function reachable from `root`, each before the Functions that made its inputs."""
    order = []
    visited = {root}
    stack = [(root, iter(root.next_edges))]
    while stack:
        node, edges = stack[-1]
        for edge in edges:
            if type(edge) is tuple and edge[0] not in visited:
                visited.add(edge[0])
                stack.append((edge[0], iter(edge[0].next_edges)))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def _run(root: Function, index: int, grad: Any, retain_graph: bool) -> None:
    pending: dict[Function, list[Any]] = {root: [None] * len(root.output_meta)}
    pending[root][index] = grad
    recorder = state.recorder  # inspect.record(): times each node's backward, takes gradient statistics
    for node in topological_order(root):
        grads = pending.pop(node, None)
        if grads is None:
            continue  # no gradient flows into this node
        if node.saved is None:
            raise RuntimeError(
                f"backward through {node.name} a second time: its saved arrays were freed by the first backward. "
                "Pass retain_graph=True to the first .backward() to keep them"
            )
        for i, g in enumerate(grads):
            if g is None:
                shape, dtype = node.output_meta[i]
                grads[i] = node.xp.zeros(shape, dtype=dtype)
        if node.output_hooks or node.retained_outputs:
            _output_hooks(node, grads)
        if node.saved_versions:
            check_saved_versions(node)
        input_grads = node.backward(*grads) if recorder is None else recorder.backward(node, grads)
        if type(input_grads) is not tuple:
            input_grads = (input_grads,)
        if state.anomaly:
            check_finite(node, input_grads, "gradient for input")
        if not retain_graph:
            node.saved = None
        _send(node, grads, input_grads, pending)


def _send(node: Function, grads: list[Any], input_grads: tuple[Any, ...], pending: dict[Function, list[Any]]) -> None:
    edges = node.next_edges
    if len(input_grads) > len(edges):
        raise RuntimeError(f"{node.name}.backward returned {len(input_grads)} gradients for {len(edges)} inputs")
    for i, (edge, g) in enumerate(zip(edges, input_grads)):
        if edge is None or g is None:
            continue
        leaf = type(edge) is not tuple  # a leaf Tensor (or Parameter) rather than (Function, output index)
        if leaf:
            shape, dtype = edge.data.shape, edge.data.dtype
        else:
            shape, dtype = edge[0].output_meta[edge[1]]
        if g.shape != shape:
            g = sum_to_shape(node, i, g, shape)
            fresh = True
        else:
            fresh = leaf and g.base is None and not _is_one_of(g, grads)
        if g.dtype != dtype:
            g = g.astype(dtype)
            fresh = True
        if leaf:
            _accumulate_leaf(edge, g, fresh)
        else:
            slot = pending.get(edge[0])
            if slot is None:
                slot = pending[edge[0]] = [None] * len(edge[0].output_meta)
            index = edge[1]
            slot[index] = g if slot[index] is None else slot[index] + g
    for missing in range(len(input_grads), len(edges)):
        if edges[missing] is not None:
            raise RuntimeError(f"{node.name}.backward returned no gradient for input {missing}, which requires grad")


def _is_one_of(array: Any, arrays: list[Any]) -> bool:
    for other in arrays:
        if array is other:
            return True
    return False


def sum_to_shape(node: Function, index: int, grad: Any, shape: tuple[int, ...]) -> Any:
    """Undo broadcasting: sum `grad` over the axes along which `shape` was broadcast."""
    lead = grad.ndim - len(shape)
    if lead < 0 or any(s != 1 and s != g for s, g in zip(shape, grad.shape[lead:])):
        raise RuntimeError(
            f"{node.name}.backward returned a gradient of shape {grad.shape} for input {index} of shape {shape}"
        )
    axes = tuple(range(lead)) + tuple(lead + k for k, s in enumerate(shape) if s == 1 and grad.shape[lead + k] != 1)
    return grad.sum(axis=axes).reshape(shape) if axes else grad.reshape(shape)


def _output_hooks(node: Function, grads: list[Any]) -> None:
    for i, hooks in (node.output_hooks or {}).items():
        for hook in list(hooks):
            grads[i] = _call_hook(hook, grads[i])
    for i, ref in (node.retained_outputs or {}).items():
        tensor = ref()
        if tensor is not None:
            tensor.grad = Tensor(grads[i].copy()) if tensor.grad is None else tensor.grad + Tensor(grads[i])


def _call_hook(hook: Any, grad: Any) -> Any:
    replaced = hook(Tensor(grad))
    if replaced is None:
        return grad
    data = replaced.data if isinstance(replaced, Tensor) else replaced
    if data.shape != grad.shape:
        raise RuntimeError(f"hook {hook!r} returned a gradient of shape {data.shape}, expected {grad.shape}")
    return data


def _accumulate_leaf(leaf: Tensor, grad: Any, fresh: bool) -> None:
    """leaf.grad += grad. The first gradient is stored as is only when `fresh` (no
    other array, gradient or view shares its memory); otherwise it is copied, so
    that no two leaves share one gradient buffer."""
    if leaf._hooks:
        for hook in list(leaf._hooks):
            grad = _call_hook(hook, grad)
        fresh = False
    if type(grad) is not backend.ndarray and not backend.is_array(grad):
        grad = leaf.xp.asarray(grad)
    if leaf.grad is None:
        leaf.grad = Tensor(grad if fresh else grad.copy())
    else:
        leaf.grad.data += grad


Tensor.backward = backward  # type: ignore[attr-defined]  (x.backward() walks the graph from x)
