"""Errors raised while writing or reading Velero-format backup files.

They live in the one exception tree (``strongroom.errors``) as subclasses of
``StrongroomError``, so the CLI and the reconcilers report them like any other
error; a separate subclass for an unsupported format lets a restore tell "this
tarball is damaged" apart from "this tarball is from a newer Velero".
"""

from __future__ import annotations

from strongroom.errors import StrongroomError


class ArchiveError(StrongroomError):
    """A backup file is malformed, damaged, truncated or outside Velero's layout."""


class UnsupportedFormatError(ArchiveError):
    """The tarball declares a format version this strongroom cannot read."""
