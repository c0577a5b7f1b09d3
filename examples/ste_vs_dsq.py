"""The seed experiment: what the quantizer does to a weight gradient, at 8 bits and at 2 bits.

A 1->1 3x3 convolution on a (1, 1, 4, 4) input. Its weights are fake-quantized
with the min/max scale of the weights themselves (unsigned range [0, 2^b - 1],
the zero point placed where 0 falls), and the loss is the sum of the output.

- Round + STE: the weight gradient is the same at 8 and at 2 bits. With a
  min/max scale every weight is inside the range, so the STE mask is all ones
  and the gradient is the float gradient, whatever the bit width.
- DSQ: the gradient is the slope of the soft curve at each weight's place in
  its bin, and the bins depend on the bit width: 8 and 2 bits differ. The
  smallest weight, which the min/max scale puts exactly on the lowest level,
  gets 0 from DSQ (printed -0.0000: its upstream gradient is negative). DSQ's
  gradient stops at the last level, where the STE's goes on for half a step
  (docs/quantization.md, "The edge convention").
- STE with a fixed scale (the 8-bit scale used at 2 bits as well): the 2-bit
  range is narrower, the weights outside it get a zero gradient, and the STE
  gradients differ too.
"""

import minigrad_q as mq
from minigrad_q import quant

ALPHA = 0.4  # DSQ's alpha for this demo


def weight_gradient(method: str, bits: int, scale=None, seed: int = 0):
    """dL/dW of L = conv2d(x, q(W)).sum() for a fixed random x and W; q is `method` ("ste" or "dsq")
    at `bits`, with the min/max scale of W unless `scale` is given."""
    mq.manual_seed(seed)
    x = mq.randn(1, 1, 4, 4)
    weight = mq.randn(1, 1, 3, 3, requires_grad=True)
    qmin, qmax = quant.qrange(bits, signed=False)
    own_scale, zero_point = quant.tensor_qparams(weight.detach(), qmin, qmax)
    scale = own_scale if scale is None else scale
    if method == "ste":
        quantized = quant.fake_quant(weight, scale, zero_point, qmin, qmax)
    else:
        quantized = quant.dsq(weight, scale, zero_point, qmin, qmax, alpha=ALPHA)
    mq.conv2d(x, quantized).sum().backward()
    return weight.grad.numpy()


def scale_8bit(seed: int = 0):
    """The min/max scale of the same weights at 8 bits."""
    mq.manual_seed(seed)
    mq.randn(1, 1, 4, 4)
    weight = mq.randn(1, 1, 3, 3)
    return quant.tensor_qparams(weight, *quant.qrange(8, signed=False))[0]


def show(title: str, grad) -> None:
    print(f"  {title}")
    for row in grad[0, 0]:
        print("    " + "  ".join(f"{value:+.4f}" for value in row))


if __name__ == "__main__":
    for method in ("ste", "dsq"):
        g8, g2 = weight_gradient(method, 8), weight_gradient(method, 2)
        verdict = "identical" if (g8 == g2).all() else "different"
        print(f"{method.upper()} with the min/max scale: 8-bit and 2-bit weight gradients are {verdict}")
        show("8 bits", g8)
        show("2 bits", g2)
    fixed = scale_8bit()
    g8, g2 = weight_gradient("ste", 8, fixed), weight_gradient("ste", 2, fixed)
    zeros = int((g2 == 0).sum() - (g8 == 0).sum())
    print(f"STE with the fixed 8-bit scale {float(fixed.item()):.5f}: "
          f"{'identical' if (g8 == g2).all() else 'different'} ({zeros} more weights clipped at 2 bits)")
    show("8 bits", g8)
    show("2 bits", g2)
