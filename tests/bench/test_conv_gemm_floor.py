"""scripts/conv_gemm_floor.py records every GEMM of conv2d's forward and backward."""

import pytest
from helpers import load_script

pytest.importorskip("torch")

@pytest.mark.parametrize("channels, kernel", [(3, 3), (6, 5), (16, 3)],
                         ids=["column matrices", "kernel rows when shipped", "shifted when shipped"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_the_recorded_gemms_do_all_of_the_convolutions_multiply_adds(input_grad, channels, kernel):
    """Forward, weight gradient and (when asked) input gradient on the column-matrix path, whatever path
    the conv takes as shipped: 2·N·K·C·kh·kw·OH·OW FLOPs each, more where the fused path's wide layouts
    multiply zeros (at most WIDE_MAX_WASTE times)."""
    script = load_script("conv_gemm_floor")
    batch, out_channels, size = 4, 16, 9
    padding = kernel // 2
    result = script.one_case(batch, channels, out_channels, size, kernel, padding, input_grad, repeat=1)
    one_gemm = 2 * batch * out_channels * channels * kernel * kernel * size * size
    gemms = 3 if input_grad else 2
    assert gemms * one_gemm <= result["gemm_flops"] <= 2.5 * gemms * one_gemm
    assert result["calls"] >= gemms
    assert min(result["ours"], result["numpy_gemm"], result["torch_gemm"], result["torch"]) > 0
