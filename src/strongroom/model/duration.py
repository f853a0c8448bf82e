"""Go ``time.Duration`` strings, parsed and printed exactly as Go does.

Velero's resources carry durations as Go strings: ``spec.ttl: 720h0m0s``,
``csiSnapshotTimeout: 10m0s``, hook timeouts, a BackupStorageLocation's
``backupSyncPeriod``, and the CLI's ``--ttl``. Velero parses them with
``time.ParseDuration`` and writes them back with ``Duration.String()``. A
backup whose metadata strongroom writes must read the same in Velero and in
``velero backup describe``, and a value Velero rejects must be rejected here
with the message a Velero user already knows, so both directions follow Go to
the letter: the grammar (``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+``, a bare ``0``),
the units (``ns us µs μs ms s m h``), int64 nanosecond overflow, the error
wording and quoting, and the canonical form (``1h30m0s``, ``1.5s``, ``250ms``,
``0s``).

Go durations are whole nanoseconds; :class:`datetime.timedelta` holds
microseconds, so the ``*_ns`` functions carry the exact value and the
timedelta ones round toward zero to the microsecond.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from strongroom.errors import UsageError

__all__ = [
    "DurationError",
    "format_duration",
    "format_duration_ns",
    "parse_duration",
    "parse_duration_ns",
]


class DurationError(UsageError, ValueError):
    """A Go duration string is malformed or out of range; the message is Go's."""


NANOSECOND: Final = 1
MICROSECOND: Final = 1000 * NANOSECOND
MILLISECOND: Final = 1000 * MICROSECOND
SECOND: Final = 1000 * MILLISECOND
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

# Go accepts both the micro sign (U+00B5) and the Greek small mu (U+03BC).
_UNITS: Final = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,
    "\u03bcs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_INT64_MAX: Final = (1 << 63) - 1
_OVERFLOW: Final = 1 << 63


def _go_quote(text: str) -> str:
    """Quote `text` the way Go's time package quotes it in errors.

    Not strconv.Quote: printable ASCII is kept, '"' and '\\' are
    backslash-escaped, and every byte of a non-ASCII or control character is
    written as ``\\xNN``.
    """
    parts = ['"']
    for character in text:
        if character < " " or ord(character) >= 0x80:
            parts.extend(f"\\x{byte:02x}" for byte in character.encode("utf-8", "surrogatepass"))
        else:
            if character in '"\\':
                parts.append("\\")
            parts.append(character)
    parts.append('"')
    return "".join(parts)


def _invalid(original: str) -> DurationError:
    return DurationError("time: invalid duration " + _go_quote(original))


def _is_digit(character: str) -> bool:
    # str.isdigit() would accept other scripts' digits, which Go does not.
    return "0" <= character <= "9"


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string to whole nanoseconds, as ``time.ParseDuration`` does."""
    original = text
    rest = text
    negative = False
    if rest and rest[0] in "+-":
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise _invalid(original)
    total = 0
    while rest:
        if not (rest[0] == "." or _is_digit(rest[0])):
            raise _invalid(original)
        # The integer part: Go reports overflow here as a plain invalid duration.
        index = 0
        whole = 0
        while index < len(rest) and _is_digit(rest[index]):
            if whole > _OVERFLOW // 10:
                raise _invalid(original)
            whole = whole * 10 + int(rest[index])
            if whole > _OVERFLOW:
                raise _invalid(original)
            index += 1
        had_whole = index > 0
        rest = rest[index:]
        # The fraction: digits past int64 precision are consumed but ignored, as in Go.
        fraction, scale, had_fraction = 0, 1.0, False
        if rest and rest[0] == ".":
            rest = rest[1:]
            index = 0
            overflowed = False
            while index < len(rest) and _is_digit(rest[index]):
                if not overflowed:
                    if fraction > _INT64_MAX // 10:
                        overflowed = True
                    else:
                        candidate = fraction * 10 + int(rest[index])
                        if candidate > _OVERFLOW:
                            overflowed = True
                        else:
                            fraction = candidate
                            scale *= 10
                index += 1
            had_fraction = index > 0
            rest = rest[index:]
        if not had_whole and not had_fraction:
            raise _invalid(original)
        index = 0
        while index < len(rest) and not (rest[index] == "." or _is_digit(rest[index])):
            index += 1
        if index == 0:
            raise DurationError("time: missing unit in duration " + _go_quote(original))
        unit_name, rest = rest[:index], rest[index:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationError(
                f"time: unknown unit {_go_quote(unit_name)} in duration {_go_quote(original)}"
            )
        if whole > _OVERFLOW // unit:
            raise _invalid(original)
        value = whole * unit
        if fraction > 0:
            # Go computes the fractional part in float64 and truncates; doing the
            # same keeps results identical for fractions of hours.
            value += int(float(fraction) * (float(unit) / scale))
            if value > _OVERFLOW:
                raise _invalid(original)
        total += value
        if total > _OVERFLOW:
            raise _invalid(original)
    if negative:
        return -total
    if total > _INT64_MAX:
        raise _invalid(original)
    return total


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string (``"720h0m0s"``, ``"1.5h"``, ``"-90s"``, ``"0"``).

    Sub-microsecond parts are dropped (toward zero), since timedelta cannot hold them.
    """
    nanoseconds = parse_duration_ns(text)
    magnitude = abs(nanoseconds) // MICROSECOND
    return timedelta(microseconds=-magnitude if nanoseconds < 0 else magnitude)


def _fraction(value: int, precision: int) -> tuple[str, int]:
    """Split off the last `precision` digits of `value` as Go's fmtFrac does.

    Returns the fraction text (``".5"``; empty when zero, trailing zeros
    dropped) and the integer part.
    """
    digits = []
    printing = False
    for _ in range(precision):
        digit = value % 10
        printing = printing or digit != 0
        if printing:
            digits.append(str(digit))
        value //= 10
    if not printing:
        return "", value
    return "." + "".join(reversed(digits)), value


def format_duration_ns(nanoseconds: int) -> str:
    """Format whole nanoseconds exactly as Go's ``Duration.String()`` does."""
    if not -_OVERFLOW <= nanoseconds <= _INT64_MAX:
        raise DurationError(f"time: duration {nanoseconds}ns is out of range for a Go time.Duration")
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < SECOND:
        # Below a second Go switches to the largest unit that keeps an integer part.
        if value == 0:
            return "0s"
        if value < MICROSECOND:
            return f"{sign}{value}ns"
        if value < MILLISECOND:
            fraction, whole = _fraction(value, 3)
            return f"{sign}{whole}{fraction}\u00b5s"
        fraction, whole = _fraction(value, 6)
        return f"{sign}{whole}{fraction}ms"
    fraction, seconds = _fraction(value, 9)
    text = f"{seconds % 60}{fraction}s"
    minutes = seconds // 60
    if minutes > 0:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        # Go stops at hours: days have no fixed length.
        if hours > 0:
            text = f"{hours}h{text}"
    return sign + text


def format_duration(value: timedelta) -> str:
    """Format a timedelta as Go's ``Duration.String()`` would (``timedelta(days=30)`` -> ``"720h0m0s"``)."""
    microseconds = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return format_duration_ns(microseconds * MICROSECOND)
