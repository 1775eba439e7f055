"""User-facing errors shared by every package.

Every error a user can cause (a bad video, a missing camera, a broken bundle, an output folder
that cannot be written, a backend that is not installed) is raised as a :class:`ParttrackError`
subclass. The CLI prints ``error: <message>`` and ``hint: <hint>`` on one line each and exits
with :attr:`ParttrackError.exit_code` — never a traceback.
"""

from __future__ import annotations


class ParttrackError(Exception):
    """An error caused by input or environment, not by a bug.

    Args:
        message: what was wrong, naming the offending path/index/value.
        hint: what the user can do about it (optional).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(ParttrackError):
    """A video, camera, image folder or CSV that cannot be used."""


class BundleError(ParttrackError):
    """A model bundle that is missing files, has a mismatched K or an unknown format version."""


class BackendUnavailable(ParttrackError):
    """The requested inference backend (or its device) is not installed/present."""


class OutputError(ParttrackError):
    """An output location that cannot be created or written."""
