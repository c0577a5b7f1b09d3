"""Draw the quantizers' transfer curves and gradients for docs/quantization.md (needs matplotlib).

    python scripts/plot_quantizers.py            # writes docs/img/quantizers.png and docs/img/dsq.png

Every curve is computed by minigrad_q itself: the forward of each quantizer on a fine grid of x, and
its gradient by calling backward on the sum of the output (so the plot shows the backward the code
really has, not a formula typed here).
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import minigrad_q as mq  # noqa: E402
from minigrad_q import quant  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "img")
GRID = 2001


def curve(function, low, high):
    """(x, f(x), df/dx) on GRID points of [low, high], from minigrad_q's forward and backward."""
    x = mq.linspace(low, high, GRID, dtype=mq.float64).requires_grad_()
    y = function(x)
    y.sum().backward()
    return x.detach().numpy(), y.detach().numpy(), x.grad.numpy()


def panel(axes, column, title, x, y, grad, reference=None, label=None, dots=False):
    top, bottom = axes[0, column], axes[1, column]
    if reference is not None:
        top.plot(x, reference, color="0.75", lw=1, label="hard fake quant")
    top.plot(x, y, ".", ms=1.5, label=label) if dots else top.plot(x, y, lw=1.5, label=label)
    bottom.plot(x, grad, lw=1.5, label=label)
    top.set_title(title, fontsize=10)
    bottom.set_xlabel("x")
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)


def methods_figure(path):
    """One column per method, 2 bits: output (top) and dy/dx (bottom)."""
    scale, qmin, qmax = 0.5, -2, 1
    low, high = -1.6, 1.1
    figure, axes = plt.subplots(2, 5, figsize=(17, 6), sharex="col")
    x, hard, grad = curve(lambda t: quant.fake_quant(t, scale, 0, qmin, qmax), low, high)
    panel(axes, 0, "round + STE (fake_quant), 2 bits", x, hard, grad)
    for alpha in (0.2, 0.5, 0.9):
        _, soft, _ = curve(lambda t, a=alpha: quant.dsq_soft(t, scale, 0, qmin, qmax, a), low, high)
        _, _, slope = curve(lambda t, a=alpha: quant.dsq(t, scale, 0, qmin, qmax, a), low, high)
        panel(axes, 1, "DSQ: soft curve, its slope (= backward)", x, soft, slope,
              reference=hard if alpha == 0.2 else None, label=f"alpha {alpha}")
    axes[0, 1].legend(fontsize=8)
    _, lsq_y, lsq_dx = curve(lambda t: quant.lsq(t, scale, qmin, qmax), low, high)
    panel(axes, 2, "LSQ, step 0.5: output and dx", x, lsq_y, lsq_dx)
    step = mq.tensor(scale, dtype=mq.float64, requires_grad=True)
    xs = mq.linspace(low, high, GRID, dtype=mq.float64)
    steps = []
    for value in xs.numpy():  # d output / d step at each x, grad_scale 1 (the per-element term)
        step.grad = None
        quant.lsq(mq.tensor([value], dtype=mq.float64), step, qmin, qmax, grad_scale=1.0).sum().backward()
        steps.append(step.grad.item())
    axes[1, 2].plot(x, steps, lw=1, ls="--", label="d/d step")
    axes[1, 2].legend(fontsize=8)
    alpha = 1.0
    _, pact_y, pact_dx = curve(lambda t: quant.pact(t, alpha, 2), -0.5, 1.5)
    x_pact = mq.linspace(-0.5, 1.5, GRID, dtype=mq.float64).numpy()
    panel(axes, 3, "PACT, alpha 1, 2 bits: output and dx", x_pact, pact_y, pact_dx)
    axes[1, 3].plot(x_pact, (x_pact >= alpha).astype(float), lw=1, ls="--", label="d/d alpha")
    axes[1, 3].legend(fontsize=8)
    mq.manual_seed(0)
    _, noised, noise_dx = curve(lambda t: quant.quant_noise(t, 0.5, 2, scale=scale, zero_point=0, signed=True), low, high)
    panel(axes, 4, "QuantNoise p 0.5, 2 bits: one draw per x", x, noised, noise_dx, reference=hard, dots=True)
    axes[1, 4].set_ylim(-0.05, 1.25)
    axes[0, 0].set_ylabel("output")
    axes[1, 0].set_ylabel("gradient")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def dsq_figure(path):
    """The DSQ paper's pictures: the soft curve and its slope for several alphas, 1 bit on [0, 1] and 2 bits."""
    figure, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col")
    for column, (title, scale, qmin, qmax, low, high) in enumerate(
            [("1 bit, codes {0, 1} on [0, 1]", 1.0, 0, 1, -0.25, 1.25),
             ("2 bits, codes {0..3} on [0, 3]", 1.0, 0, 3, -0.25, 3.25)]):
        x, hard, _ = curve(lambda t, s=scale, lo=qmin, hi=qmax: quant.fake_quant(t, s, 0, lo, hi), low, high)
        axes[0, column].plot(x, hard, color="0.75", lw=1, label="round")
        for alpha in (0.1, 0.2, 0.5, 0.9):
            _, soft, _ = curve(lambda t, a=alpha, s=scale, lo=qmin, hi=qmax: quant.dsq_soft(t, s, 0, lo, hi, a), low, high)
            _, _, slope = curve(lambda t, a=alpha, s=scale, lo=qmin, hi=qmax: quant.dsq(t, s, 0, lo, hi, a), low, high)
            axes[0, column].plot(x, soft, lw=1.5, label=f"alpha {alpha}")
            axes[1, column].plot(x, slope, lw=1.5, label=f"alpha {alpha}")
        axes[0, column].set_title(title, fontsize=10)
        axes[1, column].set_xlabel("x")
        for row in (0, 1):
            axes[row, column].grid(alpha=0.3)
    axes[0, 0].set_ylabel("soft(x) and round(x)")
    axes[1, 0].set_ylabel("DSQ backward: d soft / dx")
    axes[0, 1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    methods_figure(os.path.join(OUT, "quantizers.png"))
    dsq_figure(os.path.join(OUT, "dsq.png"))
    print(f"wrote {os.path.join(OUT, 'quantizers.png')} and {os.path.join(OUT, 'dsq.png')}")
