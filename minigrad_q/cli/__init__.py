"""The ``minigrad-q`` command line: one module per command, ``main`` in main.py."""

from .main import main

__all__ = ["main"]
