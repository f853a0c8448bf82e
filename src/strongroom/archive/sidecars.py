"""The small gzip'd files Velero stores beside a backup tarball.

``velero backup describe --details`` and ``velero backup logs`` read these
from the bucket, so strongroom must write them exactly as Velero does, and a
strongroom restore of a Velero backup reads them back:

* ``<B>-results.gz``: gzip of ``{"errors": Result, "warnings": Result}``,
  where a Result is ``{"velero": [...], "cluster": [...], "namespaces":
  {"<ns>": [...]}}`` with empty parts left out (``pkg/util/results/result.go``,
  ``pkg/controller/backup_controller.go``). Restores use the same shape in
  ``restore-<R>-results.gz``.
* ``<B>-resource-list.json.gz``: gzip of ``{"<apiVersion>/<Kind>":
  ["<ns>/<name>" or "<name>", ...]}`` with sorted entries
  (``pkg/backup/backed_up_items_map.go``).
* ``<B>-logs.gz``: gzip of the backup's log lines (``pkg/util/logging/
  dual_mode_logger.go``), in logrus's text or JSON format.

JSON is written as Go's ``json.Encoder`` writes it (one line, trailing
newline) and gzip as Go's writer does (no name, zero time). Everything here is
bytes in, bytes out, and decoding is bounded so a hostile file cannot expand
without limit.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from strongroom.archive import gzipstream, jsoncodec
from strongroom.archive.checksum import HashingWriter, WritableStream
from strongroom.archive.errors import ArchiveError
from strongroom.archive.writer import DEFAULT_COMPRESSLEVEL, ResourceList

DEFAULT_MAX_DECODED_BYTES: Final = 256 * 1024 * 1024
_LOG_CHUNK: Final = 64 * 1024


@dataclass
class Result:
    """Messages of one severity, by where they arose: Velero's ``results.Result``.

    Mutable on purpose: a backup adds to it as items fail and goes on
    (DESIGN.md, "Partial failure is data").
    """

    velero: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    namespaces: dict[str, list[str]] = field(default_factory=dict)

    def add(self, namespace: str | None, message: str) -> None:
        """Record a message about an item: cluster-scoped when ``namespace`` is empty, as Velero does."""
        if namespace:
            self.namespaces.setdefault(namespace, []).append(message)
        else:
            self.cluster.append(message)

    def add_velero(self, message: str) -> None:
        """Record a message about the tool itself (storage, plugins), not about an item."""
        self.velero.append(message)

    def merge(self, other: Result) -> None:
        self.velero.extend(other.velero)
        self.cluster.extend(other.cluster)
        for namespace, messages in other.namespaces.items():
            self.namespaces.setdefault(namespace, []).extend(messages)

    def count(self) -> int:
        return len(self.velero) + len(self.cluster) + sum(map(len, self.namespaces.values()))

    def is_empty(self) -> bool:
        return self.count() == 0

    def to_json(self) -> dict[str, Any]:
        # Go's `omitempty` drops empty lists and maps; so must we, or the
        # files would differ from Velero's for the same results.
        value: dict[str, Any] = {}
        if self.velero:
            value["velero"] = list(self.velero)
        if self.cluster:
            value["cluster"] = list(self.cluster)
        namespaces = {ns: list(messages) for ns, messages in self.namespaces.items() if messages}
        if namespaces:
            value["namespaces"] = namespaces
        return value

    @classmethod
    def from_json(cls, value: Any, where: str) -> Result:
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ArchiveError(f"{where} is not a JSON object")
        namespaces = value.get("namespaces") or {}
        if not isinstance(namespaces, dict):
            raise ArchiveError(f"{where}.namespaces is not a JSON object")
        return cls(
            velero=_strings(value.get("velero"), f"{where}.velero"),
            cluster=_strings(value.get("cluster"), f"{where}.cluster"),
            namespaces={
                ns: _strings(messages, f"{where}.namespaces.{ns}") for ns, messages in namespaces.items()
            },
        )


@dataclass
class Results:
    """The errors and warnings of one backup or restore."""

    errors: Result = field(default_factory=Result)
    warnings: Result = field(default_factory=Result)


def encode_results(results: Results) -> bytes:
    """``<B>-results.gz`` (and ``restore-<R>-results.gz``) contents."""
    document = {"errors": results.errors.to_json(), "warnings": results.warnings.to_json()}
    return _gzip(jsoncodec.encode_line(document))


def decode_results(data: bytes, *, max_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> Results:
    what = "results file"
    document = jsoncodec.decode(_gunzip(data, what, max_bytes), what)
    if not isinstance(document, dict):
        raise ArchiveError(f"{what} is not a JSON object")
    return Results(
        errors=Result.from_json(document.get("errors"), "errors"),
        warnings=Result.from_json(document.get("warnings"), "warnings"),
    )


def encode_resource_list(resource_list: Mapping[str, Sequence[str]]) -> bytes:
    """``<B>-resource-list.json.gz`` contents; entries are sorted as Velero sorts them."""
    document = {key: sorted(entries) for key, entries in resource_list.items()}
    return _gzip(jsoncodec.encode_line(document))


def decode_resource_list(data: bytes, *, max_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> ResourceList:
    what = "resource list"
    document = jsoncodec.decode(_gunzip(data, what, max_bytes), what)
    if not isinstance(document, dict):
        raise ArchiveError(f"{what} is not a JSON object")
    return {key: _strings(entries, f"{what}[{key!r}]") for key, entries in document.items()}


class LogWriter:
    """Streams log lines into ``<B>-logs.gz`` without keeping them.

    A context manager like ``BackupWriter``; ``sha256`` and ``size`` of the
    compressed output are known once it is closed.
    """

    def __init__(self, fileobj: WritableStream, *, compresslevel: int = DEFAULT_COMPRESSLEVEL) -> None:
        self._sink = HashingWriter(fileobj)
        self._gzip = gzipstream.writer(self._sink, compresslevel)
        self._pending: list[str] = []
        self._pending_size = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write_line(self, line: str) -> None:
        # Lines are gathered and compressed 64 KiB at a time: one small write
        # per line costs more than formatting it.
        self._pending.append(line if line.endswith("\n") else line + "\n")
        self._pending_size += len(line)
        if self._pending_size >= _LOG_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._gzip.write("".join(self._pending).encode("utf-8", "backslashreplace"))
            self._pending.clear()
            self._pending_size = 0

    def close(self) -> None:
        # A log cut short is still worth keeping (Velero uploads it even when
        # the backup fails), so it is always finished properly.
        if self._gzip.closed:
            return
        self._flush()
        self._gzip.close()
        self._sink.flush()

    @property
    def sha256(self) -> str:
        return self._sink.hexdigest()

    @property
    def size(self) -> int:
        return self._sink.size


def encode_log(lines: Iterable[str]) -> bytes:
    """``<B>-logs.gz`` contents from log lines (a newline is added where missing)."""
    buffer = io.BytesIO()
    with LogWriter(buffer) as writer:
        for line in lines:
            writer.write_line(line)
    return buffer.getvalue()


def iter_log_lines(data: bytes, *, max_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> Iterator[str]:
    """The lines of a ``-logs.gz`` file, without their newlines."""
    text = _gunzip(data, "log file", max_bytes).decode("utf-8", "replace")
    yield from text.splitlines()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=DEFAULT_COMPRESSLEVEL, mtime=0)


def _gunzip(data: bytes, what: str, max_bytes: int) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
            plain = stream.read(max_bytes + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"{what} is damaged or truncated: {exc}") from exc
    if len(plain) > max_bytes:
        raise ArchiveError(f"{what} expands to more than {max_bytes} bytes")
    return plain


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ArchiveError(f"{where} is not a list of strings")
    return value
