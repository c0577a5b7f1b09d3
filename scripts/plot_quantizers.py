"""Draw the quantizers' transfer curves and gradients for docs/quantization.md (needs matplotlib:
pip install -e ".[plot]").

    python scripts/plot_quantizers.py            # writes docs/img/quantizers.png and docs/img/dsq.png
    python scripts/plot_quantizers.py DIR        # writes them to DIR instead

The drawing is minigrad_q.inspect.plots (plot_quantizers, plot_dsq): every curve is minigrad_q's own
forward on a fine grid of x, and every gradient its own backward.
"""

import os
import sys

from minigrad_q.inspect import plots

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "img")

if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else OUT
    methods, dsq = os.path.join(folder, "quantizers.png"), os.path.join(folder, "dsq.png")
    plots.plot_quantizers(bits=2, out=methods)
    plots.plot_dsq(out=dsq)
    print(f"wrote {os.path.normpath(methods)} and {os.path.normpath(dsq)}")
