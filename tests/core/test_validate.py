"""core/validate.py: the shared argument checks accept what torch accepts and refuse the rest in one style."""

import numpy as np
import pytest

from minigrad_q.core.validate import flag, integer, normalize_dim, pair


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((2, 5), (2, 5)), ([4], (4, 4)), (np.int64(2), (2, 2)),
                                             ((np.int32(1), 2), (1, 2))])
def test_pair_takes_an_int_or_one_or_two_ints(value, expected):
    assert pair("op", "stride", value) == expected


@pytest.mark.parametrize("value, error, message", [
    (2.5, TypeError, r"op: stride must be an int or a pair of ints, got 2.5"),
    ((1, True), TypeError, r"op: stride must be an int or a pair of ints, got \(1, True\)"),
    ((1, 2, 3), TypeError, r"op: stride must be an int or a pair of ints, got \(1, 2, 3\)"),
    ((), TypeError, r"op: stride must be an int or a pair of ints, got \(\)"),
    ((0, 1), ValueError, r"op: stride must be >= 1, got \(0, 1\)"),
])
def test_pair_refuses_other_values_naming_the_op_and_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        pair("op", "stride", value, minimum=1)


def test_integer_checks_type_then_range():
    assert integer("Linear", "in_features", np.int16(4), 0) == 4 and type(integer("op", "n", np.int16(4))) is int
    with pytest.raises(TypeError, match="Linear: in_features must be a non-negative integer, got bool True"):
        integer("Linear", "in_features", True, 0)
    with pytest.raises(TypeError, match="op: n must be an int, got str '3'"):
        integer("op", "n", "3")
    with pytest.raises(ValueError, match="op: n must be a positive integer, got 0"):
        integer("op", "n", 0, 1)
    with pytest.raises(ValueError, match="op: n must be an integer >= 2, got 1"):
        integer("op", "n", 1, 2)


def test_flag_takes_only_bools():
    assert flag("op", "signed", False) is False
    for value in (0, 1, None, "yes"):
        with pytest.raises(TypeError, match=f"op: signed must be a bool, got {value!r}"):
            flag("op", "signed", value)


def test_normalize_dim_maps_negative_dims_and_refuses_out_of_range():
    assert [normalize_dim("sum", d, 3) for d in (-3, -1, 0, 2)] == [0, 2, 0, 2]
    assert normalize_dim("sum", -1, 0) == 0  # a 0-d tensor takes 0 and -1, like torch
    with pytest.raises(IndexError, match=r"sum: dimension 3 is out of range for a tensor of 3 dims \(expected -3..2\)"):
        normalize_dim("sum", 3, 3)
    with pytest.raises(TypeError, match="sum: dim must be an int, got bool True; hint"):
        normalize_dim("sum", True, 3, bool_hint="; hint")
