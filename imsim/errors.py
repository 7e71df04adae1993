"""Errors the command line turns into one line and exit 2."""


class UsageError(Exception):
    """A bad flag value or an unreadable input."""
