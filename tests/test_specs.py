"""Property tests of every differentiable op: each registered gradient spec, gradchecked on drawn cases.

Run one op's spec with ``pytest tests/test_specs.py -k Mul``.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad_q import backend
from minigrad_q.specs import SPECS
from minigrad_q.testing import HypothesisDraw, RandomDraw, all_function_subclasses, check_spec

FUNCTIONS = all_function_subclasses()  # imports every module, so every spec is registered
SPEC_LIST = sorted(SPECS.values(), key=lambda spec: (spec.function.__name__, spec.function.__module__))


_NAMES = [spec.function.__name__ for spec in SPEC_LIST]


def _name(spec):
    """The op's class name; with its module when two modules define that name."""
    name = spec.function.__name__
    return name if _NAMES.count(name) == 1 else f"{spec.function.__module__.rsplit('.', 1)[-1]}.{name}"


def _skip_unless_supported(spec, device):
    if device not in spec.devices:
        pytest.skip(f"the spec of {spec.function.__name__} runs only on {spec.devices}")


@pytest.mark.parametrize("spec", SPEC_LIST, ids=_name)
def test_gradient_matches_finite_differences(spec, device):
    _skip_unless_supported(spec, device)

    @given(st.data())
    def check(data):
        check_spec(spec, HypothesisDraw(data, device=device))

    check()


@pytest.mark.parametrize("spec", SPEC_LIST, ids=_name)
def test_gradient_fast_mode(spec, device):
    _skip_unless_supported(spec, device)

    @settings(max_examples=max(1, settings().max_examples // 4))
    @given(st.data())
    def check(data):
        check_spec(spec, HypothesisDraw(data, device=device), fast_mode=True)

    check()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("spec", SPEC_LIST, ids=_name)
def test_gradient_with_seeded_draws(spec, fused):
    """The path `minigrad-q gradcheck` takes: RandomDraw with fixed seeds; on each op's fused path
    (where it has one) and on its plain array code."""
    with backend.use_fused(fused):
        for seed in range(3):
            report = check_spec(spec, RandomDraw(seed))
            assert report.passed, report.message


def test_every_function_has_a_spec():
    missing = [f"{cls.__module__}.{cls.__qualname__}" for cls in FUNCTIONS if cls not in SPECS]
    assert not missing, (
        "these Functions have no gradient spec (register one with minigrad_q.specs.register_spec "
        "right after the class): " + ", ".join(missing)
    )

