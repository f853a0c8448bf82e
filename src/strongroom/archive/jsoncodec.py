"""JSON encoded the way Velero's Go code encodes it, and decoded strictly.

Velero writes each item with ``encoding/json``'s ``Marshal`` of an
unstructured map and its side files with ``json.Encoder``: compact output,
object keys sorted, non-ASCII kept as UTF-8, and ``<``, ``>``, ``&``, U+2028
and U+2029 escaped. Doing the same makes our files diff cleanly against
Velero's and makes the bytes (and so the checksums) a pure function of the
object. Floating-point numbers may be spelled differently from Go (``1.0``
versus ``1``); Kubernetes objects carry numbers as integers or quantity
strings, so this does not arise in practice and stays JSON-equivalent.

Decoding refuses what Go would refuse (invalid UTF-8, ``NaN``) and names the
file in the error, so an administrator knows which object is damaged.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import orjson

from strongroom.archive.errors import ArchiveError

# Go's encoder escapes these so JSON can be embedded in HTML and JavaScript.
# They cannot occur outside strings in JSON text, so replacing them anywhere
# only touches string contents.
_GO_ESCAPES: Final = (
    (b"&", b"\\u0026"),
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
# Used only for what orjson refuses but JSON allows (integers beyond 64 bits).
_FALLBACK: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def encode(value: Any) -> bytes:
    """Encode like Go's ``json.Marshal``; raises ArchiveError for what cannot be JSON.

    orjson does the work (about ten times faster than the standard library, and
    a backup encodes every item): keys sorted by their UTF-8 bytes as Go sorts
    them, compact, UTF-8 kept. NaN and infinities are refused, as Go refuses them.
    """
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        data = _encode_fallback(value, exc)
    if b"null" in data:
        _check_finite(value)
    for raw, escaped in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def _encode_fallback(value: Any, error: Exception) -> bytes:
    try:
        return _FALLBACK.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArchiveError(f"object holds a string that is not valid Unicode: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"object cannot be encoded as JSON: {error}") from exc


def _check_finite(value: Any) -> None:
    # orjson writes NaN and infinities as null; Go (and JSON) have no such numbers.
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, float) and not math.isfinite(current):
            raise ArchiveError(f"object cannot be encoded as JSON: {current!r} is not a JSON number")
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list | tuple):
            stack.extend(current)


def encode_line(value: Any) -> bytes:
    """Encode like Go's ``json.Encoder.Encode``: ``Marshal`` plus a newline."""
    return encode(value) + b"\n"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode(data: bytes, where: str) -> Any:
    """Decode JSON text; ``where`` (a path or file name) goes into the error message."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{where} is not UTF-8 text: {exc}") from exc
    except ValueError as exc:
        raise ArchiveError(f"{where} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ArchiveError(f"{where} nests JSON too deeply to decode") from exc
