"""Velero's backup file formats (format 1.1.0): the tarball and its side files.

Backups must be interchangeable with Velero's, so this package owns every
byte-level detail of them: tar paths (``paths``), streaming writer and
validating reader of ``<B>.tar.gz`` (``writer``, ``reader``), and the gzip'd
results, resource list and log files (``sidecars``). It is pure: file-like
objects and bytes in and out, no network, no Kubernetes client, no object
store; ``storage`` decides where the bytes go. See docs/backup-format.md.
"""

from __future__ import annotations

from strongroom.archive.checksum import HashingReader, HashingWriter, WritableStream
from strongroom.archive.errors import ArchiveError, UnsupportedFormatError
from strongroom.archive.paths import (
    FORMAT_VERSION,
    FormatVersion,
    GroupResource,
    ItemPath,
    item_paths,
    parse_item_path,
    resource_list_entry,
    resource_list_key,
)
from strongroom.archive.reader import ArchiveSummary, BackupItem, BackupReader
from strongroom.archive.sidecars import (
    LogWriter,
    Result,
    Results,
    decode_resource_list,
    decode_results,
    encode_log,
    encode_resource_list,
    encode_results,
    iter_log_lines,
)
from strongroom.archive.writer import BackupWriter, ResourceList, WriteResult

__all__ = [
    "FORMAT_VERSION",
    "ArchiveError",
    "ArchiveSummary",
    "BackupItem",
    "BackupReader",
    "BackupWriter",
    "FormatVersion",
    "GroupResource",
    "HashingReader",
    "HashingWriter",
    "ItemPath",
    "LogWriter",
    "ResourceList",
    "Result",
    "Results",
    "UnsupportedFormatError",
    "WritableStream",
    "WriteResult",
    "decode_resource_list",
    "decode_results",
    "encode_log",
    "encode_resource_list",
    "encode_results",
    "item_paths",
    "iter_log_lines",
    "parse_item_path",
    "resource_list_entry",
    "resource_list_key",
]
