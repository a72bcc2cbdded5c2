"""Errors an operator can act on: the CLI prints their message, never a traceback."""


class UserError(Exception):
    """Bad input or an unavailable dependency, explained in one message; exit code 2 by default."""

    exit_code = 2
