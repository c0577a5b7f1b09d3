"""What every command shares: UsageError, a mistake in how a command was called."""


class UsageError(Exception):
    """A mistake in how the command was called; ``main`` prints it as one line and exits with code 2."""
