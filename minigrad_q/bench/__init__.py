"""``minigrad-q bench``: programs that measure speed against PyTorch and the machine's own limits.

suite.py runs the modes and writes the reports; overhead.py, cnn.py and quant.py are the modes;
timing.py and machine.py are what they share; profile.py is ``--profile``.
"""

from .machine import describe_machine, gpu_report, machine_limits, thread_report
from .profile import profile_step
from .suite import MODES, format_results, run, write_json, write_markdown

__all__ = ["MODES", "run", "format_results", "write_json", "write_markdown", "profile_step", "describe_machine",
           "machine_limits", "gpu_report", "thread_report"]
