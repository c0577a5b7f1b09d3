"""Shared fixtures: hypothesis profiles and the device parametrization."""

import os

import pytest
from hypothesis import HealthCheck, settings

import minigrad_q as mq

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request):
    """Each test that takes `device` runs on cpu, and on cuda (marked gpu) where a GPU exists."""
    if request.param == "cuda" and not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    mq.manual_seed(0)
    yield
