"""Structured logs for the in-cluster server: one JSON object per line, Velero's level names.

Administrators read the server's logs with ``oc logs`` and feed them to log
stores that parse JSON, and the seed (OADP's DataProtectionApplication
``logLevel``) names logrus' levels: trace, debug, info, warning, error, fatal,
panic. So the server logs the way Velero does: ``time`` (RFC 3339, UTC),
``level`` (the logrus name), ``msg``, the logger, and every field given with
``extra=`` (``backup``, ``restore``, ``controller``, ...); an exception becomes
``error`` with its traceback in a field of its own.

Secrets must never reach a log line (a credentials file echoed in an error, a
token in a URL). ``register_secret`` names values to mask; the filter that
``configure_logging`` installs masks them in messages, fields and tracebacks
of every record, whichever library logged it.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from strongroom.errors import UsageError

__all__ = [
    "FATAL",
    "LOG_LEVELS",
    "PANIC",
    "REDACTED",
    "TRACE",
    "JsonFormatter",
    "LogFormat",
    "SecretFilter",
    "TextFormatter",
    "configure_logging",
    "current_level",
    "level_name",
    "parse_level",
    "register_secret",
    "set_level",
]

LogFormat = Literal["json", "text"]

# The logrus levels, least severe first: the values DataProtectionApplication's logLevel accepts.
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal", "panic")

# logrus has a level below debug; Python has none, so it gets a number of its own.
TRACE = 5
# fatal is as severe as Python's CRITICAL; panic is the one above it.
FATAL = logging.CRITICAL
PANIC = logging.CRITICAL + 10

_LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": FATAL,
    "panic": PANIC,
}
# Python's own spellings are accepted too (``--log-level WARN``), as they name the same levels.
_ALIASES = {"warn": "warning", "critical": "fatal"}

# Names for plain-text formatters elsewhere in the process; CRITICAL keeps its own name there.
logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(PANIC, "PANIC")

REDACTED = "<redacted>"
# Masking a value this short would mangle ordinary words in every line; no real secret is that short.
_MIN_SECRET = 4
# In a credentials file (``aws_secret_access_key = ...``) each value is a secret of its own.
_ASSIGNMENT = re.compile(r"^\s*[A-Za-z0-9_.-]+\s*[=:]\s*(?P<value>\S.*?)\s*$", re.MULTILINE)

# Third-party loggers whose INFO is noise for an administrator: an access line per health
# probe, and kopf's line per handled object (our controllers log what they did themselves).
# They speak at INFO only when the server logs at debug, and the access log only at trace.
_NOISY: dict[str, int] = {"aiohttp.access": TRACE, "kopf.objects": logging.DEBUG}

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# kopf's per-object records carry its settings and flags; its object reference is kept as ``object``.
_KOPF_ATTRS = frozenset({"settings", "k8s_skip", "k8s_ref"})


def parse_level(name: str) -> int:
    """The logging level of a logrus level name (``trace`` ... ``panic``, any case)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    level = _LEVELS.get(key)
    if level is None:
        raise UsageError(
            f"unknown log level {name!r}",
            hint=f"use one of {', '.join(LOG_LEVELS)}",
        )
    return level


def level_name(levelno: int) -> str:
    """The logrus name of a logging level: the least severe logrus level at or above it."""
    for name in LOG_LEVELS:
        if levelno <= _LEVELS[name]:
            return name
    return "panic"


# -- secrets ------------------------------------------------------------------


class _Secrets:
    """The values to mask, as one regular expression rebuilt on every registration.

    Longer values are tried first, so a secret that contains another one is
    masked whole. Reads never lock: the pattern is replaced, never mutated.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        candidates = {value.strip()}
        if "\n" in value:
            candidates.update(m["value"] for m in _ASSIGNMENT.finditer(value))
        candidates = {c for c in candidates if len(c) >= _MIN_SECRET}
        if not candidates:
            return
        with self._lock:
            self._values |= candidates
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None else text

    def mask_value(self, value: Any) -> Any:
        """A field value with every string in it masked (dicts, lists and tuples are walked)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.mask(str(value))


_SECRETS = _Secrets()


def register_secret(value: str | bytes | None) -> None:
    """Never log ``value``: it is masked in every record from now on.

    A multi-line value (a credentials file) also registers each ``key = value``
    line's value, so one key echoed alone is masked too. Values shorter than
    four characters are ignored.
    """
    if value is None:
        return
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    _SECRETS.add(text)


def _forget_secrets() -> None:
    """For tests: start over with no registered secrets."""
    _SECRETS.clear()


class SecretFilter(logging.Filter):
    """Masks registered secrets in a record's message, its ``extra`` fields and its traceback.

    It sits on the handler, so it sees records of every logger that propagate
    there, not only those logged on the logger it was added to.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS.active:
            return True
        record.msg = _SECRETS.mask(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                setattr(record, key, _SECRETS.mask_value(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = _SECRETS.mask("".join(traceback.format_exception(*record.exc_info)).rstrip())
        elif record.exc_text:
            record.exc_text = _SECRETS.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = _SECRETS.mask(record.stack_info)
        return True


# -- formatters ---------------------------------------------------------------


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _source(record: logging.LogRecord) -> str:
    """``strongroom/controller/leader.py:42``: the file below the import root, like Velero's logSource."""
    path = record.pathname.replace("\\", "/")
    for marker in ("/site-packages/", "/src/"):
        if marker in path:
            path = path.rsplit(marker, 1)[1]
            break
    else:
        path = record.filename
    return f"{path}:{record.lineno}"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record as a flat mapping: our keys first, then the ``extra=`` fields."""
    doc: dict[str, Any] = {
        "time": _rfc3339(record.created),
        "level": level_name(record.levelno),
        "msg": _SECRETS.mask(record.getMessage()),
        "logger": record.name,
        "logSource": _source(record),
    }
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        doc["error"] = _SECRETS.mask(str(exc) or type(exc).__name__)
        doc["error.type"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        doc["traceback"] = record.exc_text or _SECRETS.mask(
            "".join(traceback.format_exception(*record.exc_info)).rstrip()
        )
    elif record.exc_text:
        doc["traceback"] = _SECRETS.mask(record.exc_text)
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping):
        doc["object"] = _SECRETS.mask_value(dict(ref))
    for key, value in vars(record).items():
        if key in _RECORD_ATTRS or key in _KOPF_ATTRS:
            continue
        # A field named like one of ours is kept beside it, renamed as logrus does.
        doc[f"fields.{key}" if key in doc else key] = _SECRETS.mask_value(value)
    if record.stack_info:
        doc["stack"] = _SECRETS.mask(record.stack_info)
    return doc


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time``, ``level``, ``logger``, ``msg``, fields."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(_fields(record), default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class TextFormatter(logging.Formatter):
    """logrus' text format (``time=... level=info msg="..." backup=b1``) for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        doc = _fields(record)
        trace = doc.pop("traceback", None)
        line = " ".join(f"{key}={_text_value(value)}" for key, value in doc.items())
        return f"{line}\n{trace}" if trace else line


_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if _BARE.match(text) else orjson.dumps(text).decode()


# -- configuration ------------------------------------------------------------


class _ServerHandler(logging.StreamHandler[IO[str]]):
    """The handler ``configure_logging`` installs; recognised so that a second call replaces it."""


def configure_logging(
    level: str = "info", fmt: LogFormat = "json", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as JSON (or logrus text), at ``level``.

    The server owns its process's logging, so the root logger's other handlers
    (the command line's plain text one) are removed. Returns the handler.
    """
    levelno = parse_level(level)
    if fmt not in ("json", "text"):
        raise UsageError(f"unknown log format {fmt!r}", hint="use json or text")
    handler = _ServerHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, _ServerHandler):
            old.close()
    root.addHandler(handler)
    _apply_level(levelno)
    return handler


def set_level(name: str) -> None:
    """Change the server's level while it runs (a DataProtectionApplication's ``logLevel``)."""
    _apply_level(parse_level(name))


def current_level() -> str:
    """The logrus name of the root logger's level."""
    return level_name(logging.getLogger().level)


def _apply_level(levelno: int) -> None:
    logging.getLogger().setLevel(levelno)
    for name, speaks_at in _NOISY.items():
        # NOTSET follows the root; otherwise keep the library above INFO until asked for detail.
        logging.getLogger(name).setLevel(
            logging.NOTSET if levelno <= speaks_at else max(levelno, logging.WARNING)
        )
