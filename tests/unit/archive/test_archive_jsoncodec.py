"""Items are encoded as Go's json.Marshal writes them, fast, and what JSON cannot hold is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strongroom.archive import ArchiveError
from strongroom.archive.jsoncodec import decode, encode

SAMPLES: list[Any] = [
    {"b": 1, "a": [1, 2, {"z": None, "y": True}], "c": "text"},
    {"metadata": {"annotations": {"html": "<a href='x'>&amp;</a>", "sep": "line\u2028para\u2029"}}},
    {"ünïcode": "日本語", "Z": "upper", "a": "lower", "\U0001f600": "emoji", "\ue000": "private"},
    {"big": 2**70, "negative": -(2**63), "float": 1.5, "zero": 0},
    {"nested": [[[]], {}, ""], "escapes": 'quote " backslash \\ tab \t newline \n'},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_encoding_matches_gos_marshal_rules(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        expected = expected.replace(raw, escaped)
    assert encode(value) == expected.encode()
    assert decode(encode(value), "sample") == value


@pytest.mark.parametrize(
    "value", [{"x": float("nan")}, {"x": [float("inf")]}, {"x": "\ud800"}, {"x": {1, 2}}]
)
def test_what_json_cannot_hold_is_refused(value: Any) -> None:
    with pytest.raises(ArchiveError):
        encode(value)
