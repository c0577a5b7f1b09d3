"""bench/machine.py: each CPU type gets its own benchmark page."""

import pytest

from minigrad_q.bench.machine import cpu_page


@pytest.mark.parametrize("cpu, page", [
    ("AMD EPYC", "amd-epyc"),
    ("Intel(R) Xeon(R) Processor", "intel-xeon"),
    ("Intel(R) Xeon(R) Platinum 8488C CPU @ 2.40GHz", "intel-xeon-platinum-8488c"),
    ("", "unknown-cpu"),
])
def test_cpu_page_names_the_cpu_type(cpu, page):
    assert cpu_page(cpu) == page
