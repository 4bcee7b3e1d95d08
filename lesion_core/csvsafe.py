"""The one CSV writer (and its reader) for every CSV the product writes.

Ids, labels, file names and metadata come from users' files; a cell such as
`=HYPERLINK("http://x","open")` opened in a spreadsheet would run as a formula. Text cells
starting with = + - @ a tab or a carriage return get a leading apostrophe (the OWASP rule),
which spreadsheets show as text. A text cell that already starts with an apostrophe gets a
second one, so reading back (read_rows, restore) gives exactly what was written. Numbers
(int, float) are written as they are: -0.5 is a value, not a formula.
"""

from __future__ import annotations

import csv
import io

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def cell(value):
    """value as written: text starting with a formula character (or an apostrophe) gets an apostrophe."""
    if isinstance(value, str) and value.startswith(_TRIGGERS + (_QUOTE,)):
        return _QUOTE + value
    return value


def restore(value):
    """The text cell() was given, from what it wrote (other values unchanged)."""
    if isinstance(value, str) and value.startswith(_QUOTE) and value[1:].startswith(_TRIGGERS + (_QUOTE,)):
        return value[1:]
    return value


def _field(value) -> str:
    """One CSV field: quoted when it holds a comma, a quote or a line break of either kind
    (csv.writer with "\\n" line ends leaves a lone "\\r" bare, and the reader then splits the row)."""
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_rows(rows) -> str:
    """CSV text ("\\n" line ends) of rows (the header is a row too), every cell through cell()."""
    return "".join(",".join(_field(cell(value)) for value in row) + "\n" for row in rows)


def read_rows(text: str) -> list[list[str]]:
    """The rows of CSV text written by write_rows, every cell through restore()."""
    return [[restore(value) for value in row] for row in csv.reader(io.StringIO(text, newline=""))]


def restore_frame(frame, columns) -> None:
    """Undo cell() in the text columns of a pandas frame read from a CSV written here (in place)."""
    for column in columns:
        if column in frame:
            frame[column] = frame[column].map(restore)
