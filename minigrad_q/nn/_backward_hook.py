"""Full backward hooks of one Module call (``Module.register_full_backward_hook``), with torch's semantics.

A hooked call wraps the tensors that flow into and out of the module in two identity Functions:

    args -> BackwardHookInputs -> module.forward -> BackwardHookOutputs -> caller

Backward reaches ``BackwardHookOutputs`` first, which keeps the gradients of the
outputs (``grad_output``). It reaches ``BackwardHookInputs`` once the gradients
of the inputs from everything inside the call are summed; there each hook runs as
``hook(module, grad_input, grad_output)`` and a returned tuple replaces
``grad_input``. When no input requires grad, the hooks run in
``BackwardHookOutputs`` with ``grad_input`` all None, as in torch. Either way
they run once per backward through the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..core import Function, Tensor
from ..specs import register_spec


class BackwardHook:
    """One hooked call: the hooks registered when it was made, which of its positional
    arguments are wrapped, and ``grad_output`` once backward has reached the outputs."""

    def __init__(self, module: Any, hooks: Sequence[Callable[..., Any]], args: tuple[Any, ...]):
        self.module = module
        self.hooks = tuple(hooks)  # a snapshot, as torch: removing a hook later does not unhook this call
        self.arg_count = len(args)
        self.input_positions = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad)
        self.output_count = 0
        self.output_positions: tuple[int, ...] = ()
        self.grad_output: tuple[Tensor | None, ...] = ()

    def wrap_inputs(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """`args` with each Tensor that requires grad replaced by its BackwardHookInputs output."""
        if not self.input_positions:
            return args
        wrapped = BackwardHookInputs.apply(*(args[i] for i in self.input_positions), self)
        new_args = list(args)
        for position, tensor in zip(self.input_positions, wrapped):
            new_args[position] = tensor
        return tuple(new_args)

    def wrap_outputs(self, output: Any) -> Any:
        """`output` (a Tensor, or a tuple or list of them) with the Tensors that require grad wrapped."""
        single = isinstance(output, Tensor)
        if not single and not (isinstance(output, (tuple, list)) and all(isinstance(o, Tensor) for o in output)):
            raise TypeError(
                f"register_full_backward_hook: {type(self.module).__name__} returned a {type(output).__name__}; "
                "full backward hooks need a module that returns a Tensor or a tuple/list of Tensors"
            )
        outputs = [output] if single else list(output)
        self.output_count = len(outputs)
        self.output_positions = tuple(i for i, o in enumerate(outputs) if o.requires_grad)
        self.grad_output = (None,) * self.output_count
        if not self.output_positions:
            return output
        wrapped = BackwardHookOutputs.apply(*(outputs[i] for i in self.output_positions), self)
        for position, tensor in zip(self.output_positions, wrapped):
            outputs[position] = tensor
        return outputs[0] if single else type(output)(outputs)

    def run_hooks(self, grads: Sequence[Any]) -> tuple[Any, ...]:
        """Call every hook with grad_input (from `grads`, the arrays of the wrapped inputs); returns
        the arrays of the final grad_input at the wrapped positions."""
        grad_input: tuple[Tensor | None, ...] = tuple(
            Tensor(grads[self.input_positions.index(i)]) if i in self.input_positions else None
            for i in range(self.arg_count)
        )
        for hook in self.hooks:
            result = hook(self.module, grad_input, self.grad_output)
            if result is not None:
                grad_input = self._check_result(hook, result, grad_input)
        final = [grad_input[i] for i in self.input_positions]
        return tuple(None if grad is None else grad.data for grad in final)

    def _check_result(self, hook: Any, result: Any, grad_input: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
        name = f"backward hook {getattr(hook, '__name__', hook)!r} of {type(self.module).__name__}"
        if not isinstance(result, (tuple, list)) or len(result) != len(grad_input):
            raise RuntimeError(
                f"{name} returned {type(result).__name__}; expected None or a tuple of {len(grad_input)} "
                "gradients (one per positional input, Tensor or None)"
            )
        checked: list[Tensor | None] = []
        for i, (new, old) in enumerate(zip(result, grad_input)):
            if new is not None and not isinstance(new, Tensor):
                raise RuntimeError(f"{name} returned a {type(new).__name__} for input {i}; expected a Tensor or None")
            if new is not None and old is None:
                raise RuntimeError(f"{name} returned a gradient for input {i}, which takes none (not a Tensor "
                                   "that requires grad)")
            if new is not None and old is not None and new.shape != old.shape:
                raise RuntimeError(f"{name} returned a gradient of shape {new.shape} for input {i} of shape {old.shape}")
            # a copy, so that no gradient the hook returns shares memory with another gradient
            checked.append(None if new is None else new if new is old else Tensor(new.data.copy()))
        return tuple(checked)


class BackwardHookInputs(Function):
    """Identity on the inputs of a hooked Module call: y_i = x_i, dL/dx_i = dL/dy_i.

    Backward passes the gradients through the module's full backward hooks
    (``hook(module, grad_input, grad_output)``); a hook's returned tuple replaces them.
    The last argument of ``apply`` is the call's BackwardHook.
    """

    def forward(self, *args: Any) -> tuple[Any, ...]:
        *arrays, self.hook = args
        return tuple(arrays)

    def backward(self, *grad_outputs: Any) -> tuple[Any, ...]:
        return self.hook.run_hooks(grad_outputs)


class BackwardHookOutputs(Function):
    """Identity on the outputs of a hooked Module call: y_i = x_i, dL/dx_i = dL/dy_i.

    Backward keeps dL/dy as the call's ``grad_output`` (and, when no input of the
    call requires grad, runs the hooks itself with grad_input all None).
    The last argument of ``apply`` is the call's BackwardHook.
    """

    def forward(self, *args: Any) -> tuple[Any, ...]:
        *arrays, self.hook = args
        return tuple(arrays)

    def backward(self, *grad_outputs: Any) -> tuple[Any, ...]:
        hook = self.hook
        grad_output: list[Tensor | None] = [None] * hook.output_count
        for position, grad in zip(hook.output_positions, grad_outputs):
            grad_output[position] = Tensor(grad)
        hook.grad_output = tuple(grad_output)
        if not hook.input_positions:
            for function in hook.hooks:
                result = function(hook.module, (None,) * hook.arg_count, hook.grad_output)
                if result is not None and any(g is not None for g in result):
                    raise RuntimeError(
                        f"backward hook of {type(hook.module).__name__}: no input of this call requires grad, "
                        "so the hook must return None (or a tuple of None)"
                    )
        return grad_outputs


def _looking_hook(module: Any, grad_input: Any, grad_output: Any) -> None:
    """A hook that changes nothing: the gradient specs check the identity with the hook path running."""


register_spec(
    BackwardHookInputs,
    sample=lambda d: (d.tensor(d.shape()), d.tensor(d.shape())),
    call=lambda x, y: BackwardHook(None, [_looking_hook], (x, y)).wrap_inputs((x, y)),
)
register_spec(
    BackwardHookOutputs,
    sample=lambda d: (d.tensor(d.shape()), d.tensor(d.shape())),
    call=lambda x, y: BackwardHook(None, [_looking_hook], ()).wrap_outputs((x, y)),
)
