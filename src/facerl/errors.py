"""User-facing errors: the CLI prints their message on one line and exits with status 2 (no traceback)."""


class FacerlError(Exception):
    """A mistake in the user's input or environment, explained in one line."""
