"""Text for the command line: aligned on a terminal, plain and tab-separated in a pipe.

Nothing here knows about journals: the commands decide what to say, this module
decides how it looks. The rule: on a terminal, tables are aligned, have a
header and are coloured (unless ``NO_COLOR``); in a pipe, there is no escape
code and a record is one line of tab-separated fields, so it can be grepped and
cut.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import TextIO

import attrs
import msgspec

__all__ = (
    "Style",
    "escape",
    "format_duration",
    "format_time",
    "json_value",
    "render_value",
)

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
_STATUS_COLOURS = {
    "PENDING": "dim",
    "RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "yellow",
    "INTERRUPTED": "yellow",
}

# Control characters in user values are shown escaped, never written raw: an
# entry stays one line, and a value cannot send escape codes to the terminal.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_json = msgspec.json.Encoder()


@attrs.frozen
class Style:
    """How to write to one output: aligned tables on a terminal, plain in a pipe; colour apart.

    Attributes:
        tty: the output is a terminal: headers and padded columns.
        width: the terminal's width in columns (80 when unknown).
        colour: escape codes for colour and bold (by default, on a terminal).
    """

    tty: bool
    width: int = 80
    colour: bool = attrs.field(kw_only=True)

    @colour.default
    def _colour_on_a_terminal(self) -> bool:
        return self.tty

    @classmethod
    def detect(cls, stream: TextIO) -> Style:
        """The style for ``stream``: a terminal or not; no colour if ``NO_COLOR`` or ``TERM=dumb``.

        ``NO_COLOR`` (https://no-color.org) and a dumb terminal take away the
        escape codes only: a terminal still gets aligned tables with headers.
        """
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):  # replaced or closed stream
            tty = False
        colour = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        width = 80
        if tty:
            with contextlib.suppress(OSError, ValueError):
                width = os.get_terminal_size(stream.fileno()).columns or 80
        return cls(tty=tty, width=width, colour=colour)

    def paint(self, text: str, *styles: str) -> str:
        """``text`` in ``styles`` (``"bold"``, ``"red"``, ...) in colour; as is otherwise."""
        if not self.colour or not styles or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def status(self, status: str, width: int = 0) -> str:
        """A run or step status, padded to ``width`` and coloured by what it means."""
        return self.paint(status.ljust(width), _STATUS_COLOURS.get(status, "bold"))

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        colours: Sequence[str | None] = (),
        indent: str = "",
        aligned: bool | None = None,
    ) -> list[str]:
        """Lines of a table: aligned under a header on a terminal, tab-separated in a pipe.

        Args:
            header: the column titles (printed only when aligned).
            rows: the cells, as plain text.
            colours: per column, a style name, ``"status"`` to colour by
                status, or ``None``.
            indent: put before each line when aligned.
            aligned: align the columns even in a pipe (``None``: on a terminal only).
        """
        if not (self.tty if aligned is None else aligned):
            return ["\t".join(row) for row in rows]
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
        titles = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
        lines = [indent + self.paint(titles, "bold")]
        for row in rows:
            cells = []
            for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
                last = i == len(row) - 1
                padded = cell if last else cell.ljust(w)
                colour = colours[i] if i < len(colours) else None
                if colour == "status":
                    cells.append(self.status(cell, 0 if last else w))
                elif colour is not None:
                    cells.append(self.paint(padded, colour))
                else:
                    cells.append(padded)
            lines.append(indent + "  ".join(cells).rstrip())
        return lines

    def clip(self, text: str, room: int) -> str:
        """``text`` cut to ``room`` columns with an ellipsis, on a terminal only."""
        if not self.tty or len(text) <= room:
            return text
        return text[: max(room - 1, 0)] + "…"


def escape(text: str) -> str:
    """``text`` with control characters (newlines, tabs, escape codes) written as escapes."""
    return text.translate(_ESCAPES)


def render_value(value: object) -> str:
    """A stream value as one line of text: a string as is (escaped), anything else as JSON."""
    if isinstance(value, str):
        return escape(value)
    try:
        return escape(_json.encode(value).decode())
    except (TypeError, ValueError):
        return escape(repr(value))


def json_value(value: object) -> object:
    """``value`` made JSON-encodable: itself if msgspec can encode it, else its ``repr``."""
    try:
        _json.encode(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def format_time(at: float | None) -> str:
    """A UNIX time as local ``YYYY-MM-DD HH:MM:SS`` (``-`` for ``None``)."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def format_duration(seconds: float | None) -> str:
    """A duration for people: ``830ms``, ``1.52s``, ``2m03s``, ``1h02m`` (``-`` for ``None``)."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 0.001:
        return "<1ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
