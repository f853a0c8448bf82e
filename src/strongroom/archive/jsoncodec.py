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
from typing import Any, Final

from strongroom.archive.errors import ArchiveError

# Go's encoder escapes these so JSON can be embedded in HTML and JavaScript.
# They cannot occur outside strings in JSON text, so replacing them anywhere
# only touches string contents.
_GO_ESCAPES: Final = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def encode(value: Any) -> bytes:
    """Encode like Go's ``json.Marshal``; raises ArchiveError for what cannot be JSON."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"object cannot be encoded as JSON: {exc}") from exc
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArchiveError(f"object holds a string that is not valid Unicode: {exc}") from exc


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
