"""Optimizer: parameter groups, per-parameter state, zero_grad, step and state_dict, as in PyTorch.

A subclass supplies its defaults and `_update(param, grad, state, group)`,
which changes ``param.data`` in place (``out=`` arithmetic on the arrays;
a parameter is never re-bound, so modules and other optimizers keep seeing
the same Tensor). `step()` runs the updates under no_grad and skips
parameters whose ``grad`` is None.

Plain first, fused second: `_update` is the update rule as written, one
parameter at a time. A subclass may also supply `_update_fused(params, grads,
states, group)`, its multi-tensor twin for a whole group on a GPU
(optim/_gpu.py: one kernel launch per 8 parameters); `step()` takes it for a
group whose arrays ``_gpu.takes``, and the per-parameter `_update` otherwise.
Both keep the same state, so either may follow the other.

`state_dict()` has torch's layout, with parameters replaced by their index in
group order::

    {"state": {0: {"step": 3, "exp_avg": Tensor, ...}, ...},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1, 2]}, ...]}

Values are Tensors (copies, not the live buffers that torch hands out),
Python numbers, bools and tuples: enough to save with safetensors + JSON,
nothing that needs pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .. import backend
from ..core import Tensor, enable_grad, no_grad
from . import _gpu

ParamGroup = dict[str, Any]


class Optimizer:
    """Base class of the optimizers (torch.optim.Optimizer's interface)."""

    number_state: tuple[str, ...] = ()  # per-parameter state entries that are numbers; the others are Tensors

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of Tensors or of dicts, got a single Tensor "
                "(wrap it in a list)"
            )
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[ParamGroup] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group: ``{"params": [...], <options overriding the defaults>}``."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' key, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' key")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for param in params:
            if isinstance(param, tuple) and len(param) == 2 and isinstance(param[0], str):
                raise TypeError(f"{name}: got (name, tensor) pairs; pass model.parameters(), not model.named_parameters()")
            if not isinstance(param, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, but one of the params is {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (made by {param.creator!r})")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears more than once in one parameter group")
        unknown = sorted(set(param_group) - set(self.defaults) - {"params", "initial_lr"})
        if unknown:
            raise ValueError(f"{name}: unknown options {unknown} in a parameter group; known: {sorted(self.defaults)}")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        group = {"params": params}
        for key, default in self.defaults.items():
            group[key] = param_group.get(key, default)
        if "initial_lr" in param_group:
            group["initial_lr"] = param_group["initial_lr"]
        self._check_options(group)
        self.param_groups.append(group)

    def _check_options(self, group: ParamGroup) -> None:
        """Raise ValueError for option values out of range (subclasses extend)."""
        if not group["lr"] >= 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate: {group['lr']}")
        if not group.get("weight_decay", 0) >= 0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay value: {group['weight_decay']}")

    # ------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``grad = None`` (default), or fill them with zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()`` if one is given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                params, grads, states = [], [], []
                for param in group["params"]:
                    grad = param.grad
                    if grad is None:
                        continue
                    if grad.shape != param.shape:
                        raise RuntimeError(
                            f"{type(self).__name__}.step: a parameter of shape {param.shape} has a gradient of shape {grad.shape}"
                        )
                    state = self.state.get(param)
                    if state is None:
                        state = self.state[param] = {}
                    params.append(param.data)
                    grads.append(grad.data)
                    states.append(state)
                if self._has_fused_twin() and _gpu.takes(params + grads):
                    self._update_fused(params, grads, states, group)
                else:
                    for param, grad, state in zip(params, grads, states):
                        self._update(param, grad, state, group)
        return loss

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: ParamGroup) -> None:
        """Change the array `param` in place from `grad`, this parameter's `state` and the group's options."""
        raise NotImplementedError

    def _update_fused(self, params: list[Any], grads: list[Any], states: list[dict[str, Any]], group: ParamGroup) -> None:
        """`_update` of each (param, grad, state), all at once on a GPU (optim/_gpu.py), the same math."""
        raise NotImplementedError

    def _has_fused_twin(self) -> bool:
        """Whether one class defines both the `_update` in use and an `_update_fused`: a subclass that
        overrides `_update` alone keeps its own rule, one parameter at a time."""
        mro = type(self).__mro__
        owner = {name: next(cls for cls in mro if name in cls.__dict__) for name in ("_update", "_update_fused")}
        return owner["_update"] is owner["_update_fused"] is not Optimizer

    # ------------------------------------------------------------ state
    def _indexed_params(self) -> list[Tensor]:
        return [param for group in self.param_groups for param in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: Tensor | number}}, "param_groups": [{options..., "params": [indices]}]}``."""
        params = self._indexed_params()
        packed_state = {}
        for index, param in enumerate(params):
            if self.state.get(param):
                packed_state[index] = {
                    key: Tensor(value.data.copy()) if isinstance(value, Tensor) else value
                    for key, value in self.state[param].items()
                }
        groups = []
        start = 0
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        return {"state": packed_state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state saved by `state_dict()` (from this optimizer, or one built the same way).

        State entries may be Tensors or NumPy/CuPy arrays; they are copied onto
        each parameter's device and dtype. Indices may be ints or their string
        form (as JSON gives them back). Tuples that JSON turned into lists
        (``betas``) become tuples again.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups', got {keys}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the state dict has {len(saved_groups)} parameter groups, this optimizer has {len(self.param_groups)}"
            )
        for number, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}: parameter group {number} has {len(saved['params'])} parameters in the state dict, "
                    f"{len(group['params'])} in this optimizer"
                )
        params = self._indexed_params()
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved_state in state_dict["state"].items():
            index = int(key)
            if not 0 <= index < len(params):
                raise ValueError(f"{name}: state for parameter {index}, but this optimizer has {len(params)} parameters")
            new_state[params[index]] = {
                entry: self._restore(entry, value, params[index], f"{name}: parameter {index}'s {entry!r}")
                for entry, value in saved_state.items()
            }
        known = set(self.defaults) | {"params", "initial_lr"}
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            unknown = sorted(set(saved) - known)
            if unknown:
                raise ValueError(
                    f"{name}: the state dict has options {unknown} that {type(self).__name__} does not know "
                    "(saved from a different optimizer?)"
                )
            new_group = {"params": group["params"]}
            for option, value in saved.items():
                if option != "params":
                    is_tuple = isinstance(self.defaults.get(option), tuple)
                    new_group[option] = tuple(value) if is_tuple and isinstance(value, list) else value
            for option, default in self.defaults.items():
                new_group.setdefault(option, default)
            self._check_options(new_group)
            new_groups.append(new_group)
        self.state = new_state
        self.param_groups = new_groups

    def _restore(self, key: str, value: Any, param: Tensor, where: str) -> Any:
        array = value.data if isinstance(value, Tensor) else value
        if key in self.number_state:
            return array.item() if hasattr(array, "item") else array  # also torch's 0-d "step" tensors
        if not backend.is_array(array):
            raise TypeError(f"{where} should be a Tensor or an array, got {type(value).__name__}")
        if tuple(array.shape) != tuple(param.shape):
            raise ValueError(f"{where} has shape {tuple(array.shape)}, but the parameter has shape {tuple(param.shape)}")
        restored = backend.asarray(array, dtype=param.dtype, device=param.device)
        return Tensor(restored.copy() if restored is array else restored)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        lines.append(")")
        return "\n".join(lines)
