"""scripts/conv_paths.py times each fused conv2d path, forced, and reports the one the rules choose."""

import numpy as np
import pytest
from helpers import load_script

from minigrad_q.ops import _blas, _conv_plan


@pytest.mark.skipif(_blas.gemm(np.float32) is None, reason="NumPy's BLAS has no GEMM that ops/_blas.py calls")
def test_each_path_is_timed_and_the_rules_choice_reported():
    script = load_script("conv_paths")
    shipped = {name: getattr(_conv_plan, name) for name in ("SHIFTED_MIN_CHANNELS", "ROWS_MIN_KERNEL_ROWS")}
    times, chosen = script.one_case(2, 6, 4, 9, 5, 2, True, rounds=1)  # 5x5, kw·C = 30: the kernel-row rule
    assert {name: getattr(_conv_plan, name) for name in shipped} == shipped  # the constants are put back
    assert set(times) == {"columns", "shifted", "rows"} and min(times.values()) > 0
    assert chosen == "rows"
    line = script.table([("case", {"columns": 2.0, "shifted": 1.0, "rows": 3.0}, "rows")])[-1]
    assert line == "| case | 2000.00 ms | 1000.00 ms | 3000.00 ms | shifted | rows (3.00x the fastest) |"
