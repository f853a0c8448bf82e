"""Go duration strings must parse, fail and print exactly as Go's time package does them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from strongroom.errors import UsageError
from strongroom.model.duration import (
    DurationError,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)

NS = 1
US = 1000 * NS
MS = 1000 * US
S = 1000 * MS
M = 60 * S
H = 60 * M
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


# Go's own ParseDuration cases (time_test.go), with their expected nanoseconds.
@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("5s", 5 * S),
        ("30s", 30 * S),
        ("1478s", 1478 * S),
        ("-5s", -5 * S),
        ("+5s", 5 * S),
        ("-0", 0),
        ("+0", 0),
        ("5.0s", 5 * S),
        ("5.6s", 5 * S + 600 * MS),
        ("5.s", 5 * S),
        (".5s", 500 * MS),
        ("1.0s", 1 * S),
        ("1.00s", 1 * S),
        ("1.004s", 1 * S + 4 * MS),
        ("1.0040s", 1 * S + 4 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        ("10ns", 10 * NS),
        ("11us", 11 * US),
        ("12\u00b5s", 12 * US),
        ("12\u03bcs", 12 * US),
        ("13ms", 13 * MS),
        ("14s", 14 * S),
        ("15m", 15 * M),
        ("16h", 16 * H),
        ("3h30m", 3 * H + 30 * M),
        ("10.5s4m", 4 * M + 10 * S + 500 * MS),
        ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
        ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
        ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
        ("52763797000ns", 52763797000 * NS),
        ("0.3333333333333333333h", 20 * M),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", INT64_MAX),
        ("9223372036854775.807us", INT64_MAX),
        ("9223372036s854ms775us807ns", INT64_MAX),
        ("-9223372036854775808ns", INT64_MIN),
        ("-9223372036854775.808us", INT64_MIN),
        ("-9223372036s854ms775us808ns", INT64_MIN),
        ("-2562047h47m16.854775808s", INT64_MIN),
        ("0.100000000000000000000h", 6 * M),
        ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
        ("720h0m0s", 720 * H),
    ],
)
def test_parse_duration_matches_go(text: str, nanoseconds: int) -> None:
    assert parse_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        ("3d", 'time: unknown unit "d" in duration "3d"'),
        ("10", 'time: missing unit in duration "10"'),
        ("3", 'time: missing unit in duration "3"'),
        ("-", 'time: invalid duration "-"'),
        ("s", 'time: invalid duration "s"'),
        (".", 'time: invalid duration "."'),
        ("-.", 'time: invalid duration "-."'),
        (".s", 'time: invalid duration ".s"'),
        ("+.s", 'time: invalid duration "+.s"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("1h 30m", 'time: unknown unit "h " in duration "1h 30m"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
        ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
        ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
        # Go's time package writes non-ASCII bytes as \x escapes and escapes quotes.
        ("1\u00e9", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
        ('1"', 'time: unknown unit "\\"" in duration "1\\""'),
    ],
)
def test_parse_duration_rejects_like_go(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration_ns(text)
    assert str(caught.value) == message


def test_duration_error_is_a_value_error_and_a_usage_error() -> None:
    with pytest.raises(ValueError, match="time: invalid duration"):
        parse_duration("abc")
    assert issubclass(DurationError, UsageError)


def test_parse_duration_returns_timedelta() -> None:
    assert parse_duration("720h0m0s") == timedelta(days=30)
    assert parse_duration("1.5h") == timedelta(hours=1, minutes=30)
    assert parse_duration("-90s") == timedelta(seconds=-90)
    assert parse_duration("0") == timedelta(0)


def test_parse_duration_truncates_nanoseconds_toward_zero() -> None:
    assert parse_duration("1999ns") == timedelta(microseconds=1)
    assert parse_duration("-1999ns") == timedelta(microseconds=-1)


# Go's Duration.String() cases (time_test.go).
@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1 * NS, "1ns"),
        (1100 * NS, "1.1\u00b5s"),
        (2200 * US, "2.2ms"),
        (3300 * MS, "3.3s"),
        (4 * M + 5 * S, "4m5s"),
        (4 * M + 5001 * MS, "4m5.001s"),
        (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
        (8 * M + 1 * NS, "8m0.000000001s"),
        (INT64_MAX, "2562047h47m16.854775807s"),
        (INT64_MIN, "-2562047h47m16.854775808s"),
        (720 * H, "720h0m0s"),
        (10 * M, "10m0s"),
        (4 * H, "4h0m0s"),
        (-1500 * US, "-1.5ms"),
        (60 * S, "1m0s"),
    ],
)
def test_format_duration_matches_go(nanoseconds: int, text: str) -> None:
    assert format_duration_ns(nanoseconds) == text


def test_format_duration_of_timedelta() -> None:
    assert format_duration(timedelta(days=30)) == "720h0m0s"
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m0s"
    assert format_duration(timedelta(milliseconds=250)) == "250ms"
    assert format_duration(timedelta(seconds=-90)) == "-1m30s"
    assert format_duration(timedelta(0)) == "0s"


def test_format_duration_refuses_what_go_cannot_hold() -> None:
    with pytest.raises(DurationError):
        format_duration(timedelta(days=200_000))


@pytest.mark.parametrize("text", ["720h", "1.5h", "90m", "1h2m3s4ms5us6ns", "-0.5s", "0"])
def test_parse_then_format_gives_gos_canonical_form(text: str) -> None:
    canonical = format_duration_ns(parse_duration_ns(text))
    assert parse_duration_ns(canonical) == parse_duration_ns(text)
    assert format_duration_ns(parse_duration_ns(canonical)) == canonical
