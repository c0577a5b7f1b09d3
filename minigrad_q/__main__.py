"""``python -m minigrad_q``: the same as the ``minigrad-q`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
