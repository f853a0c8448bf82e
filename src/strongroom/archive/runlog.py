"""The log of one backup or restore, in the format Velero stores it.

``velero backup logs`` prints ``<B>-logs.gz`` as it is, and administrators
grep it the way they grep Velero's: logrus's text format, one line per event,
``time=... level=... msg=...`` followed by the fields in key order. Writing
the same format means one set of habits (and scripts) works for both tools.
The lines are streamed into a ``LogWriter`` so a long run never holds its
log in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from strongroom.archive.sidecars import LogWriter

__all__ = ["LEVELS", "RunLog", "format_line"]

LEVELS: Final = ("trace", "debug", "info", "warning", "error", "fatal", "panic")
# logrus quotes a value unless every character is one of these.
_BARE: Final = re.compile(r"[A-Za-z0-9\-._/@^+]+")


def _quote(value: str) -> str:
    if _BARE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_line(when: datetime, level: str, message: str, fields: dict[str, object]) -> str:
    """One logrus text line: time, level, msg, then the fields sorted by key."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [f'time="{stamp}"', f"level={level}", f"msg={_quote(message)}"]
    parts.extend(
        f"{key}={_quote(str(value))}" for key, value in sorted(fields.items()) if value not in (None, "")
    )
    return " ".join(parts)


class RunLog:
    """Writes a run's log lines, each carrying the run's own fields (``backup=ns/name``)."""

    def __init__(
        self,
        writer: LogWriter,
        fields: dict[str, object],
        *,
        clock: Callable[[], datetime] | None = None,
        echo: Callable[[str, str], None] | None = None,
    ) -> None:
        self._writer = writer
        self._fields = fields
        self._clock = clock or (lambda: datetime.now(UTC))
        self._echo = echo
        self.counts: dict[str, int] = {}

    def log(self, level: str, message: str, **fields: object) -> None:
        line = format_line(self._clock(), level, message, {**self._fields, **fields})
        self._writer.write_line(line)
        self.counts[level] = self.counts.get(level, 0) + 1
        if self._echo is not None:
            self._echo(level, line)

    def info(self, message: str, **fields: object) -> None:
        self.log("info", message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.log("warning", message, **fields)

    def error(self, message: str, **fields: object) -> None:
        self.log("error", message, **fields)

    def close(self) -> None:
        self._writer.close()
