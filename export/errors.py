"""The one exception kpose-export raises for bad input: its message is one clear line."""

from __future__ import annotations

__all__ = ["ExportError"]


class ExportError(ValueError):
    """An export that cannot be made: bad model, bad data, bad folder, converter error.

    The message is a single line that names the file, argument or step and what was
    expected; ``kpose-export`` prints it as is.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
