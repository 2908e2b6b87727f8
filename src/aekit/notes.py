"""Notes on inputs that were used only in part (an animated GIF's first frame, a TIFF's first page).

Readers call :func:`note`; a command collects the notes while it runs (the CLI does so around every
command) and lists them once at its end, so that a loop over thousands of files neither prints in the
middle of its progress bar nor repeats a file it read twice. Without a collector (aekit used as a
library) a note is an :class:`InputNoteWarning`.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

from .text import printable

KEPT = 1000  # distinct notes remembered by one collection: bounded, for long runs such as a server


class InputNoteWarning(UserWarning):
    """A note on an input that was used only in part, warned when no command collects notes."""


class Notes:
    """The distinct notes of one collection, plus a count of those past the first `KEPT`."""

    def __init__(self):
        self.messages: set[str] = set()
        self.more = 0

    def add(self, message: str) -> None:
        if message in self.messages:
            return
        if len(self.messages) < KEPT:
            self.messages.add(message)
        else:
            self.more += 1

    def __len__(self) -> int:
        return len(self.messages) + self.more

    def lines(self, shown: int = 20) -> list[str]:
        """One ``note:`` line each (the first `shown`, sorted: decoding threads give them in any order), then a
        count of the rest."""
        messages = sorted(self.messages)
        lines = [f"note: {printable(message)}" for message in messages[:shown]]  # a file name must not forge a line
        rest = len(self) - len(lines)
        if rest > 0:
            lines.append(f"note: ... and {rest} more")
        return lines


_LOCK = threading.Lock()  # readers run in decoding threads
_COLLECTING: list[Notes] = []


@contextlib.contextmanager
def collecting():
    """Collect the notes given while the block runs (in any thread); yields the :class:`Notes`."""
    notes = Notes()
    with _LOCK:
        _COLLECTING.append(notes)
    try:
        yield notes
    finally:
        with _LOCK:
            _COLLECTING.remove(notes)


def note(message: str) -> None:
    """Give a note to the innermost collection (a command run inside another lists it once), else warn."""
    with _LOCK:
        if _COLLECTING:
            _COLLECTING[-1].add(message)
            return
    warnings.warn(message, InputNoteWarning, stacklevel=3)


__all__ = ["InputNoteWarning", "Notes", "collecting", "note"]
