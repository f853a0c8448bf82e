"""The log of one backup or restore, in the format Velero stores it.

``velero backup logs`` prints ``<B>-logs.gz`` as it is, and administrators
grep it the way they grep Velero's: logrus's text format, one line per event,
``time=... level=... msg=...`` followed by the fields in key order. Writing
the same format means one set of habits (and scripts) works for both tools.
The lines are streamed into a ``LogWriter`` so a long run never holds its
log in memory.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final

from strongroom.archive.sidecars import LogWriter

__all__ = ["LEVELS", "RunLog", "format_line"]

LEVELS: Final = ("trace", "debug", "info", "warning", "error", "fatal", "panic")
# logrus quotes a value unless every character is one of these.
_BARE: Final = re.compile(r"[A-Za-z0-9\-._/@^+]+")


@functools.lru_cache(maxsize=4096)
def _quote(value: str) -> str:
    if _BARE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_line(when: datetime, level: str, message: str, fields: dict[str, object]) -> str:
    """One logrus text line: time, level, msg, then the fields sorted by key."""
    return _format(_stamp(when), level, message, fields)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _format(stamp: str, level: str, message: str, fields: dict[str, object]) -> str:
    parts = [f'time="{stamp}" level={level} msg={_quote(message)}']
    for key in sorted(fields):
        value = fields[key]
        if value is not None and value != "":
            parts.append(f"{key}={_quote(value if isinstance(value, str) else str(value))}")
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
        self._second: datetime | None = None
        self._stamp = ""
        # A backup logs from the event loop and from the thread writing its tarball.
        self._lock = threading.Lock()

    def log(self, level: str, message: str, **fields: object) -> None:
        when = self._clock()
        # Lines come thousands a second; the time text changes once a second.
        second = when.replace(microsecond=0)
        if second != self._second:
            self._second, self._stamp = second, _stamp(when)
        line = _format(self._stamp, level, message, {**self._fields, **fields})
        with self._lock:
            self._writer.write_line(line)
            self.counts[level] = self.counts.get(level, 0) + 1
        if self._echo is not None:
            self._echo(level, line)

    def items(self, message: str, resource: str, refs: Iterable[tuple[str | None, str]]) -> None:
        """One info line per item (``namespace``, ``name``) of ``resource``: the per-item lines of a
        large run, formatted in bulk with the same output as ``info(message, resource=, namespace=, name=)``."""
        when = self._clock()
        stamp = _stamp(when)
        base = {**self._fields, "resource": resource}
        keys = sorted({*base, "namespace", "name"})
        head = f'time="{stamp}" level=info msg={_quote(message)}'
        lines = []
        for namespace, name in refs:
            values = {**base, "namespace": namespace, "name": name}
            parts = [head]
            for key in keys:
                value = values[key]
                if value is not None and value != "":
                    parts.append(f"{key}={_quote(value if isinstance(value, str) else str(value))}")
            lines.append(" ".join(parts))
        with self._lock:
            for line in lines:
                self._writer.write_line(line)
            self.counts["info"] = self.counts.get("info", 0) + len(lines)

    def info(self, message: str, **fields: object) -> None:
        self.log("info", message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.log("warning", message, **fields)

    def error(self, message: str, **fields: object) -> None:
        self.log("error", message, **fields)

    def close(self) -> None:
        with self._lock:
            self._writer.close()
