"""The real ``restic`` binary, driven asynchronously: the only module that builds restic command lines.

File-system backup copies a pod volume's files with restic (0.14 on the
nodes) into one repository per namespace, as Velero's node agent does. This
module runs restic as a subprocess and turns what it prints into values:

* ``backup --json`` streams ``status`` lines (progress) and ends with a
  ``summary`` line (snapshot id, bytes added); it runs with the volume
  directory as working directory and ``.`` as the path, under the fixed host
  name ``velero``, so snapshots hold the volume's files at their root and a
  restarted agent pod still finds its parents (Velero's choices, kept so a
  repository can move between Velero and strongroom);
* ``restore`` has no progress output, so progress is the restored target's
  size polled against ``stats --mode restore-size``;
* ``snapshots``, ``forget``, ``prune``, ``unlock`` and ``init`` are plain calls.

Secrets never reach a command line: the repository password goes through
``RESTIC_PASSWORD``, S3 keys through the ``AWS_*`` variables, the Azure
account key through ``AZURE_ACCOUNT_KEY`` and a Google key through the file
``GOOGLE_APPLICATION_CREDENTIALS`` names, and every message built from
restic's stderr has them masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from strongroom.errors import StrongroomError, UsageError

__all__ = [
    "RESTIC_HOST",
    "BackupProgress",
    "BackupSummary",
    "Progress",
    "Restic",
    "ResticError",
    "ResticTarget",
    "RestoreStats",
    "Snapshot",
    "directory_size",
    "parse_backup_line",
    "parse_snapshots",
    "parse_stats",
    "tag_filter",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

# Velero's fixed host name: the parent lookup and ``snapshots --host`` see one host, whichever pod ran restic.
RESTIC_HOST: Final = "velero"
REDACTED: Final = "<redacted>"
# restic's exit code when some source files could not be read: the snapshot is incomplete.
_EXIT_INCOMPLETE = 3
# How much of restic's stderr goes into an error message.
_MAX_STDERR_LINES = 8
# A polite stop (restic removes its lock on SIGTERM) before SIGKILL.
_TERMINATE_GRACE = 10.0

# The variables of ResticTarget.environment whose values are secrets.
_SECRET_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_ACCOUNT_KEY",
    "AZURE_ACCOUNT_SAS",
    "GOOGLE_ACCESS_TOKEN",
)
# When the location gives credentials (the first name), the process's own credentials of the same
# store must not override or mix with them (restic 0.14 takes GOOGLE_ACCESS_TOKEN before any key
# file, and an AWS profile's session token would be sent with the location's keys): explicit keys
# win, as in Velero.
_OVERRIDDEN_BY: Final = (
    (
        "AWS_ACCESS_KEY_ID",
        ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_SESSION_TOKEN"),
    ),
    ("AZURE_ACCOUNT_KEY", ("AZURE_ACCOUNT_SAS",)),
    ("GOOGLE_APPLICATION_CREDENTIALS", ("GOOGLE_ACCESS_TOKEN",)),
)

Progress = Callable[[int, int], None]
"""A progress callback: (bytes done, total bytes)."""


class ResticError(StrongroomError):
    """restic failed; the message carries its stderr with every secret masked."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.restic_exit_code = exit_code


def is_locked(exc: BaseException) -> bool:
    """Whether restic refused because another process holds the repository's lock (it may be retried)."""
    return isinstance(exc, ResticError) and "already locked" in exc.message


async def while_locked(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    unlock: Callable[[], Awaitable[None]] | None = None,
    timeout: float = 900.0,
    first_delay: float = 2.0,
) -> T:
    """Run ``call``; while another restic (a prune, a deletion) holds the lock, wait and try again.

    restic 0.14 gives up at once on a locked repository. The first time, ``unlock``
    (``restic unlock``: it removes only stale locks, of dead processes) runs and the
    call is tried again at once, so a lock left by a killed restic costs nothing more;
    a live lock (a prune) is waited out with back-off.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    unlocked = unlock is None
    while True:
        try:
            return await call()
        except ResticError as exc:
            if not is_locked(exc):
                raise
            if not unlocked and unlock is not None:
                unlocked = True
                _log.info("%s: the repository is locked; removing stale locks", what)
                await unlock()
                continue
            if time.monotonic() + delay > deadline:
                raise
            _log.info("%s: the repository is locked by another operation, trying again in %.0fs", what, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


@dataclass(frozen=True)
class BackupProgress:
    """One ``status`` line of ``restic backup --json``."""

    bytes_done: int
    total_bytes: int


@dataclass(frozen=True)
class BackupSummary:
    """The ``summary`` line of ``restic backup --json``: what the snapshot cost and holds."""

    snapshot_id: str
    data_added: int
    total_bytes_processed: int
    total_files_processed: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0


@dataclass(frozen=True)
class Snapshot:
    """One entry of ``restic snapshots --json``."""

    id: str
    short_id: str
    time: str
    hostname: str = ""
    paths: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestoreStats:
    """``restic stats --json`` of one snapshot: the size a restore writes."""

    total_size: int
    total_file_count: int


@dataclass(frozen=True)
class ResticTarget:
    """Where a repository is and how to open it; the secrets are never shown by ``repr``.

    ``url`` is restic's ``--repo`` (``s3:host/bucket/prefix/restic/ns``,
    ``azure:container:/prefix/restic/ns``, ``gs:bucket:/prefix/restic/ns`` or
    a directory), ``environment`` holds the store's credentials (``AWS_*``,
    ``AZURE_ACCOUNT_*``, ``GOOGLE_*``), ``options`` are restic's ``-o key=value``
    settings.
    """

    url: str
    password: str = field(repr=False)
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    ca_cert_file: Path | None = None
    insecure_tls: bool = False
    options: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value that must be masked if restic ever prints it."""
        values = [self.password, *(self.environment.get(name, "") for name in _SECRET_VARIABLES)]
        return tuple(value for value in values if value)


# -- parsing ------------------------------------------------------------------


def parse_backup_line(line: str | bytes) -> BackupProgress | BackupSummary | None:
    """A progress or summary line of ``restic backup --json``; None for anything else (errors, verbose lines)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("message_type")
    if kind == "status":
        return BackupProgress(
            bytes_done=_int(message.get("bytes_done")), total_bytes=_int(message.get("total_bytes"))
        )
    if kind == "summary" and message.get("snapshot_id"):
        return BackupSummary(
            snapshot_id=str(message["snapshot_id"]),
            data_added=_int(message.get("data_added")),
            total_bytes_processed=_int(message.get("total_bytes_processed")),
            total_files_processed=_int(message.get("total_files_processed")),
            files_new=_int(message.get("files_new")),
            files_changed=_int(message.get("files_changed")),
            files_unmodified=_int(message.get("files_unmodified")),
        )
    return None


def parse_snapshots(text: str | bytes) -> list[Snapshot]:
    """The snapshots ``restic snapshots --json`` printed; tags of the form ``key=value`` become a mapping."""
    try:
        entries = json.loads(text or b"[]")
    except ValueError as exc:
        raise ResticError(f"restic snapshots printed something that is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ResticError("restic snapshots did not print a JSON list")
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        tags: dict[str, str] = {}
        for tag in entry.get("tags") or ():
            key, _, value = str(tag).partition("=")
            tags[key] = value
        found.append(
            Snapshot(
                id=str(entry["id"]),
                short_id=str(entry.get("short_id") or str(entry["id"])[:8]),
                time=str(entry.get("time") or ""),
                hostname=str(entry.get("hostname") or ""),
                paths=tuple(str(p) for p in entry.get("paths") or ()),
                tags=tags,
            )
        )
    return found


def parse_stats(text: str | bytes) -> RestoreStats:
    """The output of ``restic stats --json``."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ResticError(f"restic stats printed something that is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ResticError("restic stats did not print a JSON object")
    return RestoreStats(
        total_size=_int(doc.get("total_size")), total_file_count=_int(doc.get("total_file_count"))
    )


def tag_filter(tags: Mapping[str, str]) -> str:
    """One ``--tag`` filter matching snapshots that carry all of ``tags`` (restic ANDs a comma list)."""
    pairs = []
    for key, value in sorted(tags.items()):
        tag = _tag(key, value)
        pairs.append(tag)
    return ",".join(pairs)


def _tag(key: str, value: str) -> str:
    tag = f"{key}={value}"
    if "," in tag or not key:
        # restic splits a tag list at commas; such a tag could never be matched again.
        raise UsageError(f"invalid snapshot tag {tag!r}: a tag needs a key and may not contain ','")
    return tag


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def directory_size(path: Path) -> int:
    """The bytes of the regular files under ``path`` (symlinks are not followed), as restore progress."""
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue  # a file restic is replacing right now
        except OSError:
            continue
    return total


# -- running ------------------------------------------------------------------


@dataclass
class _Run:
    code: int
    stdout: bytes
    stderr: bytes


class Restic:
    """One repository, reached through the restic binary.

    ``cache_dir`` is restic's local cache (under the agent's scratch
    directory, so it never lands in a pod's volume); ``environment`` is the
    base environment of every restic process, by default this process's own,
    so that proxies, CA bundles and instance credentials keep working.
    """

    def __init__(
        self,
        target: ResticTarget,
        *,
        cache_dir: Path,
        binary: str = "restic",
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self._cache_dir = cache_dir
        self._binary = binary
        self._base_environment = dict(os.environ if environment is None else environment)
        # Set by whoever initialised the repository just now: it holds no snapshot yet.
        self.created = False

    @property
    def url(self) -> str:
        return self.target.url

    def __repr__(self) -> str:
        return f"Restic({self.target.url!r})"

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in self._base_environment.items()
            # Nothing from the caller may redirect restic to another repository or password.
            if not key.startswith("RESTIC_")
        }
        for given, overridden in _OVERRIDDEN_BY:
            if self.target.environment.get(given):
                for name in overridden:
                    env.pop(name, None)
        env.update(self.target.environment)
        env["RESTIC_PASSWORD"] = self.target.password
        env.setdefault("HOME", str(self._cache_dir))
        return env

    def _command(self, command: str, *args: str) -> list[str]:
        argv = [self._binary, command, "--repo", self.target.url, "--cache-dir", str(self._cache_dir)]
        if self.target.ca_cert_file is not None:
            argv += ["--cacert", str(self.target.ca_cert_file)]
        if self.target.insecure_tls:
            argv.append("--insecure-tls")
        for option in self.target.options:
            argv += ["-o", option]
        return [*argv, *args]

    async def _spawn(self, argv: Sequence[str], cwd: Path | None) -> asyncio.subprocess.Process:
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(cwd) if cwd is not None else None,
                env=self._environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise ResticError(
                f"the restic binary {self._binary!r} was not found",
                hint="install restic (Debian: apt-get install restic) or put it on PATH",
            ) from None

    async def _run(self, command: str, *args: str, cwd: Path | None = None) -> _Run:
        process = await self._spawn(self._command(command, *args), cwd)
        try:
            stdout, stderr = await process.communicate()
        except asyncio.CancelledError:
            await _stop(process)
            raise
        return _Run(process.returncode or 0, stdout, stderr)

    async def _check(self, command: str, *args: str, cwd: Path | None = None) -> _Run:
        run = await self._run(command, *args, cwd=cwd)
        if run.code != 0:
            raise self._error(command, run.code, run.stderr)
        return run

    def _error(self, command: str, code: int, stderr: bytes) -> ResticError:
        text = self._mask(stderr.decode("utf-8", errors="replace"))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        detail = "; ".join(lines[-_MAX_STDERR_LINES:]) or f"exit code {code}"
        hint = None
        lowered = detail.lower()
        # Hints only: no decision is taken from restic's wording.
        if "wrong password" in lowered:
            hint = (
                "the repository was created with another password: restore the Secret "
                "strongroom-repo-credentials of the cluster that created it"
            )
        elif "unable to open config file" in lowered or "repository does not exist" in lowered:
            hint = "the repository does not exist at this address, or the store is not reachable"
        return ResticError(
            f"restic {command} failed for repository {self.target.url}: {detail}", hint=hint, exit_code=code
        )

    def _mask(self, text: str) -> str:
        for secret in sorted(self.target.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    # -- commands -------------------------------------------------------------

    async def init(self) -> None:
        """Create the repository (fails when one exists at the address)."""
        await self._check("init")
        _log.info("created restic repository %s", self.target.url)

    async def unlock(self) -> None:
        """Remove stale locks (of dead restic processes on this host, or older than 30 minutes)."""
        await self._check("unlock")

    async def snapshots(self, tags: Mapping[str, str] | None = None) -> list[Snapshot]:
        """The snapshots carrying all of ``tags`` (every snapshot without), oldest first."""
        args = ["--json"]
        if tags:
            args += ["--tag", tag_filter(tags)]
        run = await self._check("snapshots", *args)
        return sorted(parse_snapshots(run.stdout), key=lambda s: s.time)

    async def latest_snapshot(self, tags: Mapping[str, str]) -> Snapshot | None:
        """The newest snapshot carrying all of ``tags``: the parent of an incremental backup."""
        found = await self.snapshots(tags)
        return found[-1] if found else None

    async def stats(self, snapshot_id: str) -> RestoreStats:
        """The size a restore of ``snapshot_id`` writes."""
        run = await self._check("stats", "--json", "--mode", "restore-size", snapshot_id)
        return parse_stats(run.stdout)

    async def forget(self, snapshot_ids: Sequence[str]) -> None:
        """Remove snapshots (their data stays until ``prune``)."""
        if snapshot_ids:
            await self._check("forget", *snapshot_ids)

    async def prune(self) -> None:
        """Delete the data no snapshot references any more."""
        await self._check("prune")

    async def backup(
        self,
        directory: Path,
        *,
        tags: Mapping[str, str],
        parent: str | None = None,
        progress: Progress | None = None,
        progress_interval: float = 1.0,
    ) -> BackupSummary | None:
        """Snapshot the files under ``directory``; None when it is empty (restic refuses empty snapshots).

        ``progress`` gets (bytes done, total bytes) at most once per
        ``progress_interval`` and once more at the end.
        """
        if _is_empty(directory):
            return None
        args = ["--json", "--host", RESTIC_HOST]
        for key, value in sorted(tags.items()):
            args.append(f"--tag={_tag(key, value)}")
        if parent:
            args += ["--parent", parent]
        args.append(".")
        process = await self._spawn(self._command("backup", *args), directory)
        stderr_task = asyncio.ensure_future(_read_all(process.stderr))
        summary: BackupSummary | None = None
        last = 0.0
        try:
            assert process.stdout is not None
            async for line in process.stdout:
                parsed = parse_backup_line(line)
                if isinstance(parsed, BackupSummary):
                    summary = parsed
                elif isinstance(parsed, BackupProgress) and progress is not None:
                    now = time.monotonic()
                    if now - last >= progress_interval:
                        last = now
                        progress(parsed.bytes_done, parsed.total_bytes)
            code = await process.wait()
            stderr = await stderr_task
        except asyncio.CancelledError:
            await _stop(process)
            stderr_task.cancel()
            raise
        if code != 0:
            if code == 1 and b"snapshot is empty" in stderr:
                # Only unreadable or vanished entries: nothing to keep, as for an empty volume.
                return None
            error = self._error("backup", code, stderr)
            if code == _EXIT_INCOMPLETE:
                error.hint = "some files could not be read; the snapshot would be incomplete"
            raise error
        if summary is None:
            raise ResticError(f"restic backup of {directory} printed no summary (repository {self.url})")
        if progress is not None:
            progress(summary.total_bytes_processed, summary.total_bytes_processed)
        return summary

    async def restore(
        self,
        snapshot_id: str,
        target: Path,
        *,
        progress: Progress | None = None,
        progress_interval: float = 1.0,
    ) -> RestoreStats:
        """Write the files of ``snapshot_id`` into ``target``; progress is the target's size against the snapshot's."""
        stats = await self.stats(snapshot_id)
        if progress is not None:
            progress(0, stats.total_size)
        process = await self._spawn(self._command("restore", snapshot_id, "--target", str(target)), None)
        communicate = asyncio.ensure_future(process.communicate())
        try:
            while not communicate.done():
                await asyncio.wait({communicate}, timeout=progress_interval)
                if progress is not None and not communicate.done():
                    done = await asyncio.to_thread(directory_size, target)
                    progress(min(done, stats.total_size), stats.total_size)
            _, stderr = communicate.result()
        except asyncio.CancelledError:
            await _stop(process)
            communicate.cancel()
            raise
        if process.returncode:
            raise self._error("restore", process.returncode, stderr)
        if progress is not None:
            progress(stats.total_size, stats.total_size)
        return stats


def _is_empty(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        raise ResticError(f"the volume directory {directory} does not exist") from None
    except NotADirectoryError:
        raise ResticError(f"the volume path {directory} is not a directory") from None


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Stop restic when its caller is cancelled: SIGTERM first, so it removes its lock."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), _TERMINATE_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
