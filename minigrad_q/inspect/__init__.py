"""Seeing gradients, mq.inspect: a tape that records every op's forward and backward with gradient
statistics (and doubles as a profiler), a per-layer comparison of what each quantizer does to the
weight gradient, plots of quantizers and training runs, and the graph as DOT. See docs/inspect.md."""

from .compare import GradientComparison, compare_gradients
from .graph import render, to_dot
from .plots import (
    load_history,
    plot_dsq,
    plot_grad_norms,
    plot_quantizer,
    plot_quantizer_history,
    plot_quantizers,
    plot_training,
    quantizer_curves,
)
from .tape import STAT_NAMES, CallRecord, Tape, gradient_statistics, record
from .text_table import format_table

__all__ = [
    "record", "Tape", "CallRecord", "STAT_NAMES", "gradient_statistics",
    "compare_gradients", "GradientComparison",
    "plot_quantizer", "plot_quantizers", "plot_dsq", "plot_training", "plot_grad_norms", "plot_quantizer_history",
    "quantizer_curves",
    "load_history",
    "to_dot", "render", "format_table",
]
