"""Text from outside (file names, ``config.json`` strings) made safe to print: one helper for every printing site.

A file name may hold any character but ``/`` and NUL. Printed raw, a newline in one forges a line of output
(a fake ``skipped:`` line, a fake neighbour in ``aekit similar``), an ESC starts a terminal escape sequence
(clear the screen, retitle the window), and a bidi control reorders what follows so a name shows as
another. :func:`printable` writes those characters as Python writes them in a ``repr`` (``\\n``, ``\\x1b``,
``\\u202e``) and leaves everything else alone, legitimate non-ASCII (``é``, ``漢字``) included.
:func:`tsv_field` does the same for one field of tab-separated output and doubles backslashes first, so
the field can be read back exactly (the "linear TSV" convention PostgreSQL's ``COPY`` uses).
"""

from __future__ import annotations

import re

# C0 controls (tab, newline, ESC ...), DEL and the C1 controls (U+009B is a one-character CSI); the bidi controls
# (embeddings, overrides, isolates, marks); the line and paragraph separators, which editors and some terminals
# break lines at; and the bytes 0x80-0x9F of a file name that is not UTF-8 (Python's surrogateescape keeps them as
# U+DC80-U+DC9F): an 8-bit terminal reads those as C1 controls. Other bytes of such names still print as themselves.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\udc80-\udc9f]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDC9F:
        return f"\\x{code - 0xDC00:02x}"  # the file name's own byte
    return _SHORT.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def printable(text) -> str:
    """`text` (made a string) with its control characters escaped: safe to print on one line of a terminal."""
    return _UNSAFE.sub(_escape, str(text))


def tsv_field(text) -> str:
    """One field of tab-separated output: backslashes doubled, then :func:`printable` (a tab is ``\\t``, a
    newline ``\\n``), so the field holds no tab or line break and can be read back exactly."""
    return printable(str(text).replace("\\", "\\\\"))


def tsv_line(fields) -> str:
    """Fields joined by tabs, each escaped by :func:`tsv_field`."""
    return "\t".join(tsv_field(field) for field in fields)


__all__ = ["printable", "tsv_field", "tsv_line"]
