"""Write your own differentiable op, check its gradient, and property-test it.

    python examples/custom_function.py

The op is a smooth clamp, y = lo + (hi - lo) * sigmoid(x): the kind of soft
surrogate quantizers are made of. Its backward is written by hand; gradcheck
compares it with finite differences in float64, and hypothesis draws shapes,
non-contiguous layouts and values for the same check.
"""

from hypothesis import given, settings

import minigrad_q as mq
from minigrad_q.autograd import Function
from minigrad_q.testing import shapes, tensors


class SoftClamp(Function):
    """y = lo + (hi - lo)·σ(x);  dy/dx = (y - lo)(hi - y)/(hi - lo)."""

    def forward(self, x, lo, hi):
        y = lo + (hi - lo) / (1 + self.xp.exp(-x))
        self.save_for_backward(y)
        self.lo, self.hi = lo, hi
        return y

    def backward(self, grad_output):
        (y,) = self.saved
        return grad_output * (y - self.lo) * (self.hi - y) / (self.hi - self.lo)


def soft_clamp(x, lo=-1.0, hi=1.0):
    return SoftClamp.apply(x, lo, hi)


@settings(max_examples=50, deadline=None)
@given(tensors(shape=shapes(max_dims=3), requires_grad=True))
def check_soft_clamp_gradient(x):
    assert mq.gradcheck(soft_clamp, (x, -0.5, 2.0))


def main():
    x = mq.tensor([-3.0, 0.0, 0.5, 4.0], dtype=mq.float64, requires_grad=True)
    y = soft_clamp(x)
    y.register_hook(lambda grad: print("gradient reaching y:", grad))
    y.sum().backward()
    print("y      =", y.detach())
    print("dy/dx  =", x.grad)
    print("gradcheck:", mq.gradcheck(soft_clamp, (x,)))
    check_soft_clamp_gradient()
    print("hypothesis: 50 drawn tensors passed gradcheck")


if __name__ == "__main__":
    main()
