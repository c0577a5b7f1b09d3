"""Module and Parameter mechanics: registration, naming, iteration, modes, gradients, hooks, devices,
state_dict, repr. The modules here are built from Parameters and matmul only, so these tests do not
depend on the layer ops (those are tested in test_layers.py)."""

import copy
from collections import OrderedDict

import numpy as np
import pytest

import minigrad_q as mq
import minigrad_q.nn as nn


class Affine(nn.Module):
    """y = x @ w + b, with a persistent buffer `calls` and a non-persistent buffer `scratch`."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.w = nn.Parameter(mq.randn(n_in, n_out))
        self.b = nn.Parameter(mq.zeros(n_out))
        self.register_buffer("calls", mq.tensor(0))
        self.register_buffer("scratch", mq.zeros(2), persistent=False)
        self.note = "not registered"

    def forward(self, x):
        return x @ self.w + self.b

    def extra_repr(self):
        return f"{self.w.shape[0]}, {self.w.shape[1]}"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Affine(3, 4), Affine(4, 4))
        self.head = Affine(4, 2)

    def forward(self, x):
        return self.head(self.features(x))


# ---------------------------------------------------------------- Parameter
def test_parameter_is_a_leaf_tensor_that_requires_grad_and_shares_data():
    data = mq.ones(2, 3)
    param = nn.Parameter(data)
    assert isinstance(param, mq.Tensor) and param.is_leaf and param.requires_grad
    assert param.data is data.data
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)


def test_parameter_repr_and_ops_on_it_give_plain_tensors():
    param = nn.Parameter(mq.tensor([1.0, 2.0]))
    assert repr(param) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    out = param * 2
    assert type(out) is mq.Tensor and not out.is_leaf
    assert type(param.detach()) is mq.Tensor


def test_parameter_of_integers_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        nn.Parameter(mq.tensor([1, 2]))


# ---------------------------------------------------------------- registration and naming
def test_attributes_are_registered_by_kind():
    layer = Affine(3, 2)
    assert list(layer._parameters) == ["w", "b"]
    assert list(layer._buffers) == ["calls", "scratch"]
    assert layer.note == "not registered" and "note" not in layer._parameters
    layer.plain = mq.ones(1)  # a Tensor that is not a Parameter is a plain attribute
    assert "plain" not in layer._parameters and "plain" not in layer._buffers
    assert layer.w is layer._parameters["w"]


def test_nested_modules_give_dotted_names():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == [
        "features.0.w", "features.0.b", "features.1.w", "features.1.b", "head.w", "head.b",
    ]
    assert [name for name, _ in net.named_buffers()] == ["features.0.calls", "features.0.scratch",
                                                         "features.1.calls", "features.1.scratch",
                                                         "head.calls", "head.scratch"]
    assert [name for name, _ in net.named_modules()] == ["", "features", "features.0", "features.1", "head"]
    assert [name for name, _ in net.named_children()] == ["features", "head"]
    assert [name for name, _ in net.named_parameters(prefix="model")][0] == "model.features.0.w"
    assert list(net.parameters(recurse=False)) == []
    assert len(list(net.head.parameters(recurse=False))) == 2
    assert list(net.children())[1] is net.head
    assert len(list(net.modules())) == 5
    assert net.get_submodule("features.1") is net.features[1]
    assert net.get_submodule("") is net
    with pytest.raises(AttributeError, match="no submodule `2`"):
        net.get_submodule("features.2")


def test_shared_parameters_and_modules_are_listed_once():
    shared = Affine(2, 2)
    outer = nn.Sequential(shared, shared)
    assert len(list(outer.parameters())) == 2
    assert len(list(outer.modules())) == 2
    assert len(list(outer.children())) == 1
    assert len(list(outer.named_parameters(remove_duplicate=False))) == 4
    outer.tied = nn.Module()
    outer.tied.weight = shared.w
    assert len(list(outer.parameters())) == 2
    # state_dict keeps every name, as torch's does
    assert list(outer.state_dict()) == ["0.w", "0.b", "0.calls", "1.w", "1.b", "1.calls", "tied.weight"]


def test_reassigning_changes_registration():
    layer = Affine(2, 2)
    layer.b = None
    assert layer.b is None and "b" in layer._parameters
    assert [name for name, _ in layer.named_parameters()] == ["w"]
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'w' \(nn.Parameter or None expected\)"):
        layer.w = mq.ones(2, 2)
    layer.calls = mq.tensor(5)  # a registered buffer takes a new Tensor
    assert layer.calls.item() == 5 and "calls" in layer._buffers
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'calls'"):
        layer.calls = 5
    layer.calls = nn.Parameter(mq.ones(1))  # a Parameter moves the name to the parameters
    assert "calls" in layer._parameters and "calls" not in layer._buffers
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'str' as child module 'head'"):
        net.head = "nope"
    net.head = None
    assert [name for name, _ in net.named_children()] == ["features"]


def test_delattr_removes_registered_names():
    layer = Affine(2, 2)
    del layer.w
    del layer.calls
    assert "w" not in layer._parameters and "calls" not in layer._buffers
    with pytest.raises(AttributeError, match="'Affine' object has no attribute 'w'"):
        _ = layer.w


def test_registration_errors():
    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mq.ones(1))
            super().__init__()

    with pytest.raises(AttributeError, match=r"cannot assign parameters before Module.__init__\(\) call"):
        Early()
    layer = Affine(2, 2)
    with pytest.raises(KeyError, match='buffer name can.+t contain "."'):
        layer.register_buffer("a.b", mq.ones(1))
    with pytest.raises(KeyError, match="attribute 'note' already exists"):
        layer.register_buffer("note", mq.ones(1))
    with pytest.raises(KeyError, match="parameter name can.+t be empty string"):
        layer.register_parameter("", None)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' object to parameter 'p'"):
        layer.register_parameter("p", mq.ones(1))
    with pytest.raises(TypeError, match="cannot assign 'list' object to buffer 'q'"):
        layer.register_buffer("q", [1.0])
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        layer.add_module("m", 3)


def test_missing_forward_and_unknown_attribute():
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'):
        nn.Module()(mq.ones(1))
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'tail'"):
        _ = Net().tail


def test_dir_lists_registered_names():
    names = dir(Affine(2, 2))
    assert {"w", "b", "calls", "forward", "note"} <= set(names)


# ---------------------------------------------------------------- modes, gradients, apply
def test_train_and_eval_propagate_and_return_self():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.features.train(False)
    assert net.training and net.head.training and not net.features[0].training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def test_zero_grad_sets_to_none_or_fills_zeros():
    net = Net()
    net(mq.randn(5, 3)).sum().backward()
    params = list(net.parameters())
    assert all(p.grad is not None for p in params)
    grad = params[0].grad
    net.zero_grad(set_to_none=False)
    assert params[0].grad is grad and all(np.all(p.grad.numpy() == 0) for p in params)
    net.zero_grad()
    assert all(p.grad is None for p in params)


def test_requires_grad_freezes_parameters():
    net = Net()
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_visits_children_first():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Affine", "Affine", "Sequential", "Affine", "Net"]


# ---------------------------------------------------------------- hooks
def test_forward_hooks_fire_once_per_call_and_can_be_removed():
    layer = Affine(3, 2)
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: calls.append(("pre", m, args[0].shape)))
    post = layer.register_forward_hook(lambda m, args, out: calls.append(("post", m, out.shape)))
    layer(mq.randn(4, 3))
    assert calls == [("pre", layer, (4, 3)), ("post", layer, (4, 2))]
    pre.remove()
    layer(mq.randn(1, 3))
    assert calls[2:] == [("post", layer, (1, 2))]
    post.remove()
    post.remove()  # removing twice is harmless
    layer(mq.randn(1, 3))
    assert len(calls) == 3


def test_hooks_can_replace_inputs_and_outputs():
    layer = Affine(2, 2)
    with mq.no_grad():
        layer.w.copy_(mq.eye(2))
    layer.register_forward_pre_hook(lambda m, args: args[0] * 10)  # a single value is wrapped in a tuple
    layer.register_forward_hook(lambda m, args, out: out + 1)
    out = layer(mq.tensor([[1.0, 2.0]]))
    np.testing.assert_allclose(out.detach().numpy(), [[11.0, 21.0]])


def test_hooks_on_submodules_see_intermediate_outputs():
    net = Net()
    shapes = {}
    for name, module in net.named_modules():
        if isinstance(module, Affine):
            module.register_forward_hook(lambda m, args, out, name=name: shapes.__setitem__(name, out.shape))
    net(mq.randn(7, 3))
    assert shapes == {"features.0": (7, 4), "features.1": (7, 4), "head": (7, 2)}


# ---------------------------------------------------------------- devices and dtypes
def test_to_dtype_keeps_the_parameter_objects_and_casts_grads():
    net = Net()
    net(mq.randn(2, 3)).sum().backward()
    params = list(net.parameters())
    assert net.double() is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == mq.float64 and p.grad.dtype == mq.float64 for p in params)
    assert net.head.calls.dtype == mq.int64  # integer buffers keep their dtype
    assert net.head.scratch.dtype == mq.float64
    net.to(dtype="float32")
    assert all(p.dtype == mq.float32 for p in params)
    assert net.to("cpu") is net
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point dtypes, but got desired dtype=int64"):
        net.to(mq.int64)
    with pytest.raises(mq.DeviceError, match="unknown device 'tpu'"):
        net.to(device="tpu")


@pytest.mark.gpu
def test_to_cuda_moves_params_grads_and_buffers():
    if not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    net = Net()
    net(mq.randn(2, 3)).sum().backward()
    params = list(net.parameters())
    net.cuda()
    assert all(p.device.startswith("cuda") and p.grad.device.startswith("cuda") for p in params)
    assert all(b.device.startswith("cuda") for b in net.buffers())
    out = net(mq.randn(2, 3, device="cuda"))
    assert out.device.startswith("cuda")
    net.cpu()
    assert all(p.device == "cpu" for p in net.parameters())


def test_deepcopy_gives_an_independent_module():
    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.head.w, nn.Parameter)
    with mq.no_grad():
        twin.head.w.fill_(0)
    assert not np.all(net.head.w.detach().numpy() == 0)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in net.named_parameters()]


# ---------------------------------------------------------------- state_dict
def test_state_dict_holds_params_and_persistent_buffers_detached_and_sharing_memory():
    net = Net()
    state = net.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == [
        "features.0.w", "features.0.b", "features.0.calls",
        "features.1.w", "features.1.b", "features.1.calls",
        "head.w", "head.b", "head.calls",
    ]
    assert all(type(v) is mq.Tensor and not v.requires_grad for v in state.values())
    assert np.shares_memory(state["head.w"].numpy(), net.head.w.detach().numpy())
    assert net.state_dict(keep_vars=True)["head.w"] is net.head.w


def test_load_state_dict_round_trip_copies_in_place():
    mq.manual_seed(1)
    source = Net()
    mq.manual_seed(2)
    target = Net()
    weight = target.head.w
    array = weight.data
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert target.head.w is weight and weight.data is array
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    x = mq.randn(3, 3)
    np.testing.assert_array_equal(source(x).detach().numpy(), target(x).detach().numpy())


def test_load_state_dict_accepts_arrays_and_casts_to_the_target_dtype():
    net = Net()
    state = {k: v.numpy().astype(np.float64) if v.dtype == mq.float32 else v.numpy() for k, v in net.state_dict().items()}
    state["head.b"] = np.array([1.5, -2.5])
    net.load_state_dict(state)
    assert net.head.b.dtype == mq.float32
    np.testing.assert_array_equal(net.head.b.detach().numpy(), [1.5, -2.5])


def test_load_state_dict_reports_every_problem_at_once_and_changes_nothing():
    class LeNet(Net):
        pass

    net = LeNet()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    state = Net().state_dict()
    del state["head.b"], state["features.1.calls"]
    state["head.extra"] = mq.ones(1)
    state["features.0.w"] = mq.ones(2, 2)
    with pytest.raises(RuntimeError) as error:
        net.load_state_dict(state)
    assert str(error.value) == (
        "Error(s) in loading state_dict for LeNet:\n"
        '\tMissing key(s) in state_dict: "features.1.calls", "head.b". \n'
        '\tUnexpected key(s) in state_dict: "head.extra". \n'
        "\tsize mismatch for features.0.w: copying a param with shape (2, 2) from checkpoint, "
        "the shape in current model is (3, 4)."
    )
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)


def test_load_state_dict_not_strict_returns_the_keys_but_still_checks_shapes():
    net = Net()
    state = Net().state_dict()
    del state["head.b"]
    state["head.extra"] = mq.ones(1)
    result = net.load_state_dict(state, strict=False)
    assert result == (["head.b"], ["head.extra"])
    assert result.missing_keys == ["head.b"] and result.unexpected_keys == ["head.extra"]
    np.testing.assert_array_equal(net.head.w.detach().numpy(), state["head.w"].numpy())
    state["head.w"] = mq.ones(1)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.w: copying a param with shape \(1,\)"):
        net.load_state_dict(state, strict=False)


def test_load_state_dict_rejects_non_tensors_and_non_mappings():
    net = Net()
    state = net.state_dict()
    state["head.b"] = [0.0, 0.0]
    with pytest.raises(RuntimeError, match='While copying the parameter named "head.b", expected a Tensor or an array'):
        net.load_state_dict(state)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like, got list"):
        net.load_state_dict([])


def test_non_persistent_buffers_are_unexpected_in_a_state_dict():
    layer = Affine(2, 2)
    state = layer.state_dict()
    state["scratch"] = mq.zeros(2)
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "scratch"'):
        layer.load_state_dict(state)


# ---------------------------------------------------------------- repr
def test_repr_is_a_tree_in_torch_style():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Affine(2, 2)

        def extra_repr(self):
            return "first line\nsecond line"

    net = Net()
    net.block = Block()
    assert repr(net) == (
        "Net(\n"
        "  (features): Sequential(\n"
        "    (0): Affine(3, 4)\n"
        "    (1): Affine(4, 4)\n"
        "  )\n"
        "  (head): Affine(4, 2)\n"
        "  (block): Block(\n"
        "    first line\n"
        "    second line\n"
        "    (inner): Affine(2, 2)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.Module()) == "Module()"
    assert repr(Affine(1, 5)) == "Affine(1, 5)"
