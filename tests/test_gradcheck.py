"""gradcheck passes correct backwards and catches each kind of wrong one, with a message that says where."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import Function, Tensor
from minigrad_q.gradcheck import GradcheckError, GradcheckReport, gradcheck, gradcheck_report


def leaf(values, requires_grad=True, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=requires_grad)


def random_leaf(shape, seed=0, requires_grad=True):
    return leaf(np.random.default_rng(seed).uniform(-2, 2, shape), requires_grad)


# ---------------------------------------------------------------- correct Functions
class Mul(Function):
    """y = a * b; dy/da = b, dy/db = a (broadcasting: the engine sums back)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad_output):
        a, b = self.saved
        return grad_output * b, grad_output * a


class Add(Function):
    """y = a + b; dy/da = dy/db = 1."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad_output):
        return grad_output, grad_output


class Exp(Function):
    """y = exp(x); dy/dx = y."""

    def forward(self, x):
        y = self.xp.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad_output):
        (y,) = self.saved
        return grad_output * y


class Scale(Function):
    """y = x * factor (factor a plain float); dy/dx = factor."""

    def forward(self, x, factor):
        self.factor = factor
        return x * factor

    def backward(self, grad_output):
        return grad_output * self.factor


class Sum(Function):
    """y = sum(x); dy/dx = 1 everywhere."""

    def forward(self, x):
        self.shape = x.shape
        return x.sum()

    def backward(self, grad_output):
        return self.xp.broadcast_to(grad_output, self.shape)


class MaxWithIndex(Function):
    """Two outputs: (max over the last axis, argmax); d max / dx = one-hot of the argmax (ties: first)."""

    def forward(self, x):
        index = x.argmax(axis=-1)
        self.save_for_backward(index)
        self.shape = x.shape
        return x.max(axis=-1), index

    def backward(self, grad_values, grad_index):
        (index,) = self.saved
        grad = self.xp.zeros(self.shape, dtype=grad_values.dtype)
        self.xp.put_along_axis(grad, index[..., None], grad_values[..., None], axis=-1)
        return grad


class RoundSTE(Function):
    """Forward: round half to even. Backward (straight-through): identity. Reference: the identity."""

    def forward(self, x):
        return self.xp.round(x)

    def backward(self, grad_output):
        return grad_output


def test_correct_functions_pass():
    a, b = random_leaf((2, 3), 1), random_leaf((2, 3), 2)
    assert gradcheck(Mul.apply, (a, b))
    assert gradcheck(Add.apply, (a, b))
    assert gradcheck(Exp.apply, a)
    assert gradcheck(Sum.apply, (a,))
    assert gradcheck(Scale.apply, (a, 3.0))


def test_composition_and_input_without_grad():
    a, b = random_leaf((3,), 1), random_leaf((3,), 2, requires_grad=False)
    assert gradcheck(lambda x, y: Exp.apply(Mul.apply(x, y)), (a, b))


def test_broadcast_gradients_are_summed_back():
    a, b = random_leaf((2, 3), 1), random_leaf((3,), 2)
    assert gradcheck(Mul.apply, (a, b))
    assert gradcheck(Mul.apply, (random_leaf((2, 1), 3), random_leaf((1, 4), 4)))


def test_multi_output_non_float_outputs_are_ignored():
    x = leaf([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]])
    assert gradcheck(MaxWithIndex.apply, (x,))


def test_output_that_is_the_input():
    x = random_leaf((2, 2))
    assert gradcheck(lambda t: t, (x,))


def test_zero_size_inputs_pass():
    assert gradcheck(Exp.apply, (random_leaf((0, 3)),))
    assert gradcheck(Mul.apply, (random_leaf((2, 0)), random_leaf((2, 0), 1)))
    assert gradcheck(Sum.apply, (random_leaf((0,)),))


def test_non_contiguous_input():
    data = np.random.default_rng(0).uniform(-1, 1, (3, 4)).T  # a transposed view
    x = Tensor(data, requires_grad=True)
    assert not x.data.flags.c_contiguous
    assert gradcheck(Exp.apply, (x,))


def test_fast_mode_passes_correct_functions():
    a, b = random_leaf((3, 4), 1), random_leaf((3, 4), 2)
    assert gradcheck(Mul.apply, (a, b), fast_mode=True)
    assert gradcheck(MaxWithIndex.apply, (a,), fast_mode=True)


def test_callers_tensors_are_left_alone():
    a = random_leaf((2, 2))
    before = a.data.copy()
    gradcheck(Exp.apply, (a,))
    assert a.grad is None
    assert np.array_equal(a.data, before)


def test_report_fields():
    report = gradcheck_report(Exp.apply, (random_leaf((2,)),))
    assert isinstance(report, GradcheckReport)
    assert report.passed and report.max_abs_error < 1e-6
    assert report.functions == (Exp,)
    assert "passed" in report.message and "Exp" in report.message


# ---------------------------------------------------------------- wrong backwards
class WrongSign(Mul):
    def backward(self, grad_output):
        a, b = self.saved
        return grad_output * b, -grad_output * a


class MeanInsteadOfSum(Add):
    """Reduces the broadcast gradient of b with a mean: wrong values."""

    def backward(self, grad_output):
        return grad_output, grad_output.mean(axis=0)


class WrongShape(Add):
    """Returns a gradient for b that cannot be b's: summed over the wrong axis."""

    def backward(self, grad_output):
        return grad_output, grad_output.sum(axis=1)


class MissingGradient(Mul):
    def backward(self, grad_output):
        a, b = self.saved
        return grad_output * b, None


class IgnoresUpstream(Sum):
    def backward(self, grad_output):
        return self.xp.ones(self.shape)


class Jittery(Exp):
    calls = 0

    def backward(self, grad_output):
        (y,) = self.saved
        Jittery.calls += 1
        return grad_output * (y + 1e-12 * Jittery.calls)


class Float32Gradient(Exp):
    def backward(self, grad_output):
        (y,) = self.saved
        return (grad_output * y).astype(np.float32)


class MutatesUpstream(Exp):
    def backward(self, grad_output):
        (y,) = self.saved
        grad_output *= y
        return grad_output


class MutatesInput(Function):
    def forward(self, x):
        x += 1
        return x.copy()

    def backward(self, grad_output):
        return grad_output


class RaisingBackward(Exp):
    def backward(self, grad_output):
        raise ValueError("not written yet")


def failure(fn, inputs, **options):
    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, inputs, **options)
    return str(info.value)


def test_wrong_sign_message_names_op_output_input_element_and_values():
    a = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = leaf([[0.5, -1.0, 1.5], [2.0, -2.5, 3.0]])
    message = failure(WrongSign.apply, (a, b))
    assert "WrongSign" in message
    assert "output 0" in message and "input 1" in message
    # d out[i, j] / d b[i, j] = a[i, j]; the largest error is at a = 6: out[1, 2], b[1, 2]
    assert "d out[1, 2] / d in[1, 2]" in message
    assert "numerical 6" in message and "analytic -6" in message and "difference 12" in message
    assert not gradcheck(WrongSign.apply, (a, b), raise_exception=False)


def test_wrong_sign_in_a_composition_names_the_graph():
    a, b = random_leaf((3,), 1), random_leaf((3,), 2)
    message = failure(lambda x, y: Exp.apply(WrongSign.apply(x, y)), (a, b))
    assert "WrongSign" in message and "Exp" in message
    assert "output 0 made by Exp" in message


def test_wrong_broadcast_reduction_values():
    a, b = random_leaf((2, 3), 1), random_leaf((3,), 2)
    message = failure(MeanInsteadOfSum.apply, (a, b))
    assert "input 1" in message and "Jacobian mismatch" in message


def test_wrong_broadcast_reduction_shape():
    a, b = random_leaf((2, 3), 1), random_leaf((3,), 2)
    message = failure(WrongShape.apply, (a, b))
    assert "WrongShape.backward, for its input 1, returned a gradient of shape (2,) for an input of shape (3,)" in message


def test_missing_gradient_for_one_input():
    a, b = random_leaf((2,), 1), random_leaf((2,), 2)
    message = failure(MissingGradient.apply, (a, b))
    assert "input 1" in message and "analytic 0" in message


def test_backward_ignoring_upstream_is_caught_by_the_zero_gradient_check():
    x = random_leaf((2, 3))
    message = failure(IgnoresUpstream.apply, (x,))
    assert "zero upstream gradient" in message and "input 0" in message


def test_nondeterministic_backward():
    x = random_leaf((3,))
    message = failure(Jittery.apply, (x,))
    assert "not reproducible" in message
    assert gradcheck(Jittery.apply, (x,), nondet_tol=1e-9)


def test_float32_gradient_for_float64_input():
    message = failure(Float32Gradient.apply, (random_leaf((3,)),))
    assert "Float32Gradient.backward, for its input 0, returned a float32 gradient for a float64 input" in message


def test_backward_modifying_its_upstream_gradient():
    message = failure(MutatesUpstream.apply, (random_leaf((3,)),))
    assert "upstream gradient" in message and "in place" in message


def test_forward_modifying_its_input():
    x = random_leaf((3,))
    message = failure(MutatesInput.apply, (x,))
    assert "input 0 was modified in place during forward" in message


def test_backward_that_raises():
    message = failure(RaisingBackward.apply, (random_leaf((3,)),))
    assert "backward raised ValueError: not written yet" in message


def test_output_cut_off_from_its_input():
    x = random_leaf((3,))
    message = failure(lambda t: Exp.apply(t.detach()), (x,))
    assert "analytic 0" in message


def test_fast_mode_catches_wrong_gradients():
    a, b = random_leaf((2, 3), 1), random_leaf((2, 3), 2)
    message = failure(WrongSign.apply, (a, b), fast_mode=True)
    assert "directional derivative" in message and "input 1" in message and "WrongSign" in message
    assert "IgnoresUpstream" in failure(IgnoresUpstream.apply, (a,), fast_mode=True)
    assert "float32" in failure(Float32Gradient.apply, (a,), fast_mode=True)


def test_failed_report_without_raising():
    report = gradcheck_report(WrongSign.apply, (random_leaf((2,)), random_leaf((2,), 1)))
    assert not report.passed and report.max_abs_error > 0.1
    assert "WrongSign" in report.message


# ---------------------------------------------------------------- refusals
def test_refuses_float32_inputs():
    x = leaf([1.0, 2.0], dtype=np.float32)
    with pytest.raises(TypeError, match="input 0 has dtype float32; finite differences need float64"):
        gradcheck(Exp.apply, (x,))


def test_refuses_when_nothing_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(Exp.apply, (random_leaf((2,), requires_grad=False),))


def test_refuses_non_tensor_outputs():
    with pytest.raises(TypeError, match="output 0 is float"):
        gradcheck(lambda x: 1.0, (random_leaf((2,)),))


# ---------------------------------------------------------------- reference functions
def test_reference_for_a_surrogate_gradient():
    x = leaf([0.2, 1.3, -0.7, 2.4])  # off the half-integers
    assert gradcheck(RoundSTE.apply, (x,), reference=lambda t: t)
    message = failure(RoundSTE.apply, (x,), reference=lambda t: RoundSTE.apply(t))
    assert "numerical 0" in message and "analytic 1" in message
    assert not gradcheck(RoundSTE.apply, (x,), raise_exception=False)


def test_reference_with_other_output_shapes_is_refused():
    message = failure(Exp.apply, (random_leaf((3,)),), reference=lambda t: Sum.apply(t))
    assert "reference returned outputs of shapes" in message


def test_exported_from_the_package():
    assert mq.gradcheck is gradcheck
    assert mq.autograd.gradcheck is gradcheck
    assert issubclass(GradcheckError, AssertionError)


def test_refuses_tensors_hidden_in_a_list():
    with pytest.raises(ValueError, match="inside a list or tuple; pass the Tensors to check as separate arguments"):
        gradcheck(lambda ts: Add.apply(*ts), ([random_leaf((2,)), random_leaf((2,))],))


def test_fan_out_gradients_are_summed():
    x = random_leaf((2, 3))
    assert gradcheck(lambda t: Mul.apply(t, t), (x,))
    assert gradcheck(lambda t: Add.apply(Exp.apply(t), t), (x,), fast_mode=True)


def test_graphs_and_tensors_outside_the_inputs_are_left_alone():
    w = random_leaf((3,), 5)
    outside = Exp.apply(w)  # built before gradcheck; fn's graph reaches it
    x = random_leaf((3,), 6)
    assert gradcheck(lambda t: Mul.apply(t, outside), (x,))
    assert w.grad is None
    assert "backward" not in vars(outside.creator)
    w.grad = Tensor(np.ones(3))
    assert gradcheck(lambda t: Mul.apply(t, outside), (x,), fast_mode=True)
    assert np.array_equal(w.grad.data, np.ones(3))
