"""The static pod resources an etcd backup needs beside its snapshot, and putting them back.

A snapshot alone does not restore a control plane: ``cluster-backup.sh`` also
tars the newest ``/etc/kubernetes/static-pod-resources/<component>-pod-<N>``
of kube-apiserver, kube-controller-manager, kube-scheduler and etcd (their
manifests, configuration, certificates and, with etcd encryption, its keys)
into ``static_kuberesources_<timestamp>.tar.gz``, and ``cluster-restore.sh``
extracts ``static-pod-resources`` from it into ``/etc/kubernetes``. This module
does both in the same format, so either side can be the real script.

What it adds: the revision the live manifest runs is compared with the
newest one on disk (a backup taken during a rollout holds a revision that is
not running yet, and the administrator should know); the archive streams in
chunks (no temporary file, no whole archive in memory) so it can go straight
to object storage; and a restore validates every member before writing one
(no absolute paths, ``..``, links leaving the tree, or device files) and
never deletes: a differing directory of the same name is moved aside.

Every host path sits under ``host_root`` (``/`` on a host, a temporary
directory in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import gzip
import logging
import os
import pwd
import re
import shutil
import stat
import tarfile
import zlib
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from strongroom.errors import ConflictError, NotFoundError, StrongroomError, UsageError
from strongroom.kube import Discovery, KubeClient

__all__ = [
    "ARCHIVE_TOP",
    "CHUNK_SIZE",
    "COMPONENTS",
    "KUBERNETES_DIR",
    "MANIFESTS_DIR",
    "RESOURCES_DIR",
    "ResourceDir",
    "Restored",
    "archive_stream",
    "check_archive",
    "extract_archive",
    "find_latest_resources",
    "iter_archive",
    "progressing_operators",
    "restore_resources",
    "write_archive",
]

_log = logging.getLogger(__name__)

KUBERNETES_DIR: Final = "etc/kubernetes"
MANIFESTS_DIR: Final = "etc/kubernetes/manifests"
RESOURCES_DIR: Final = "etc/kubernetes/static-pod-resources"
# The one top-level directory of the archive: cluster-restore.sh extracts exactly this.
ARCHIVE_TOP: Final = "static-pod-resources"
COMPONENTS: Final = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
CHUNK_SIZE: Final = 1 << 20

_BLOCK: Final = tarfile.BLOCKSIZE
_RECORD: Final = tarfile.RECORDSIZE
_READ_SIZE: Final = 1 << 20
# gzip container (wbits 16 + 15): what `tar -z` writes and reads.
_GZIP_WBITS: Final = 31
_GZIP_LEVEL: Final = 6
# How many symlinks one link target may pass through before we give up, as Linux does.
_MAX_LINK_HOPS: Final = 40

CLUSTER_OPERATORS_GROUP: Final = "config.openshift.io"
CLUSTER_OPERATORS: Final = "clusteroperators"


# -- which revisions -----------------------------------------------------------


@dataclass(frozen=True)
class ResourceDir:
    """One component's newest static pod resource directory, and what runs now."""

    component: str
    revision: int
    path: Path  # absolute
    relative: (
        str  # "static-pod-resources/kube-apiserver-pod-115": its name in the archive, wherever it was read
    )
    live_revision: int | None  # the revision the live manifest uses, None when unknown
    note: str | None = None


def find_latest_resources(host_root: Path, resources_dir: Path | None = None) -> list[ResourceDir]:
    """The newest ``<component>-pod-<N>`` of each control-plane component, as cluster-backup.sh finds them.

    cluster-backup.sh takes the last of ``ls -trd <component>-pod-[0-9]*`` (by
    modification time); revisions only grow, so the highest number is the
    same directory unless times were touched, and it ignores names such as
    ``kube-apiserver-pod-7.before-restore-...`` that the glob would match.
    """
    resources = resources_dir if resources_dir is not None else host_root / RESOURCES_DIR
    manifests = host_root / MANIFESTS_DIR
    if not resources.is_dir():
        raise NotFoundError(
            f"no static pod resources directory at {resources}",
            hint="run this on a control-plane host (OpenShift keeps the static pod resources there), "
            "or set --host-root to where its root file system is mounted",
        )
    found: list[ResourceDir] = []
    for component in COMPONENTS:
        revisions = _revision_dirs(resources, component)
        if not revisions:
            raise NotFoundError(
                f"no static pod resources of {component}: no {component}-pod-<N> directory in {resources}",
                hint=f"{component} must run as a static pod with revisioned resources (OpenShift 4); "
                "check that this is a control-plane host",
            )
        revision = max(revisions)
        path = revisions[revision].absolute()
        manifest = manifests / f"{component}-pod.yaml"
        live, unreadable = _live_revision(manifest, component)
        found.append(
            ResourceDir(
                component=component,
                revision=revision,
                path=path,
                relative=f"{ARCHIVE_TOP}/{path.name}",
                live_revision=live,
                note=_note(component, revision, live, manifest, unreadable, resources),
            )
        )
    return found


def _revision_dirs(resources: Path, component: str) -> dict[int, Path]:
    pattern = re.compile(re.escape(component) + r"-pod-([0-9]+)")
    out: dict[int, Path] = {}
    with os.scandir(resources) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            # A symlink would be archived as a link, without the files it points at.
            if match and entry.is_dir(follow_symlinks=False):
                out[int(match[1])] = Path(entry.path)
    return out


def _live_revision(manifest: Path, component: str) -> tuple[int | None, str | None]:
    """The revision the manifest runs: its ``revision`` label, else its hostPath volumes; or why not."""
    try:
        doc = yaml.safe_load(manifest.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"cannot read {manifest}: {exc}"
    if not isinstance(doc, Mapping):
        return None, f"{manifest} is not a pod manifest"
    metadata = doc.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    label = labels.get("revision") if isinstance(labels, Mapping) else None
    if (isinstance(label, int) and not isinstance(label, bool)) or (
        isinstance(label, str) and label.isdigit()
    ):
        return int(label), None
    spec = doc.get("spec")
    volumes = spec.get("volumes") if isinstance(spec, Mapping) else None
    pattern = re.compile(rf"(?:^|/){re.escape(component)}-pod-([0-9]+)/?$")
    revisions: list[int] = []
    for volume in volumes if isinstance(volumes, list) else ():
        host_path = volume.get("hostPath") if isinstance(volume, Mapping) else None
        path = host_path.get("path") if isinstance(host_path, Mapping) else None
        match = pattern.search(path) if isinstance(path, str) else None
        if match:
            revisions.append(int(match[1]))
    if revisions:
        return max(revisions), None
    return None, f"{manifest} names no revision (no revision label, no {component}-pod-<N> volume)"


def _note(
    component: str,
    newest: int,
    live: int | None,
    manifest: Path,
    unreadable: str | None,
    resources: Path,
) -> str | None:
    if unreadable is not None:
        return f"cannot tell which revision of {component} runs: {unreadable}"
    if live is None:
        return (
            f"no live manifest {manifest}: {component} is stopped or does not run on this host; "
            f"the backup holds revision {newest}"
        )
    if live < newest:
        return (
            f"a rollout is in progress: {component} runs revision {live} but revision {newest} is the "
            f"newest in {resources}; the backup holds revision {newest}, which is not running yet"
        )
    if live > newest:
        return f"{component} runs revision {live}, which has no directory in {resources}"
    return None


# -- the archive: writing ------------------------------------------------------


def iter_archive(
    dirs: Sequence[ResourceDir], base: Path, *, chunk_size: int = CHUNK_SIZE
) -> Generator[bytes, None, None]:
    """A gzip tar of ``dirs`` in chunks of ``chunk_size`` (the last one shorter), as ``tar -czpf - -C base``.

    Member names are the directories' paths relative to ``base``
    (``<host_root>/etc/kubernetes``); modes, owners, times and symlinks are kept
    (links as links). Memory stays at about one chunk and one read buffer.
    """
    base = base.absolute()
    roots = [(d.path.absolute(), _archive_name(d, base)) for d in dirs]
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    out = bytearray()
    blocks = _tar_blocks(roots)
    while True:
        try:
            block = next(blocks, None)
        except PermissionError as exc:
            raise UsageError(
                f"cannot read {exc.filename}: permission denied",
                hint="run as root (sudo -E), as cluster-backup.sh is",
            ) from exc
        except FileNotFoundError as exc:
            raise ConflictError(
                f"{exc.filename} disappeared while it was archived",
                hint="an operator may be pruning old revisions; take the backup again",
            ) from exc
        except OSError as exc:
            raise StrongroomError(f"cannot archive {exc.filename}: {exc.strerror or exc}") from exc
        out += compressor.compress(block) if block is not None else compressor.flush()
        while len(out) >= chunk_size:
            yield bytes(out[:chunk_size])
            del out[:chunk_size]
        if block is None:
            break
    if out:
        yield bytes(out)


def _tar_blocks(roots: Sequence[tuple[Path, str]]) -> Iterator[bytes]:
    """The uncompressed tar stream of ``roots`` (path, member name), in pieces."""
    length = 0
    for root, name in roots:
        for path, member, st in _walk(root, name):
            header = _header(path, member, st)
            if header is None:
                continue
            length += len(header)
            yield header
            if stat.S_ISREG(st.st_mode):
                for data in _file_data(path, st.st_size):
                    length += len(data)
                    yield data
    # Two zero blocks end a tar archive; tar pads it to whole records.
    end = 2 * _BLOCK
    yield bytes(end + -(length + end) % _RECORD)


async def archive_stream(
    dirs: Sequence[ResourceDir], base: Path, *, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """``iter_archive`` for an event loop: file reads and compression run in a worker thread."""
    chunks = iter_archive(dirs, base, chunk_size=chunk_size)
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        # Cancelled while a thread runs next(): the generator is busy and closes when it is collected.
        with contextlib.suppress(ValueError):
            chunks.close()


def write_archive(dirs: Sequence[ResourceDir], base: Path, dest: Path) -> int:
    """Write the archive to ``dest`` (mode 0600, replaced atomically); its size in bytes.

    The archive may hold the etcd encryption keys, so it is never readable
    by others, not even while it is being written.
    """
    dest = dest.absolute()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StrongroomError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            for chunk in iter_archive(dirs, base):
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise StrongroomError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(dest.parent)
    return size


def _archive_name(item: ResourceDir, base: Path) -> str:
    """The member name of a directory: relative to ``base`` as ``tar -C`` names it, else its ``relative``.

    A directory read from elsewhere (``--static-resources-dir`` pointing at a
    copy) still goes in as ``static-pod-resources/<name>``, which is what
    cluster-restore.sh extracts.
    """
    path = item.path.absolute()
    if not path.is_relative_to(base):
        return item.relative
    name = path.relative_to(base).as_posix()
    if name in ("", "."):
        raise UsageError(f"cannot archive {base} itself: name its static pod resource directories")
    return name


def _walk(path: Path, name: str) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Every entry under ``path`` (itself first, then by name), never following a symlink."""
    st = os.lstat(path)
    yield path, name, st
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as entries:
            children = sorted(entry.name for entry in entries)
        for child in children:
            yield from _walk(path / child, f"{name}/{child}")


def _header(path: Path, name: str, st: os.stat_result) -> bytes | None:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname, info.gname = _user_name(st.st_uid), _group_name(st.st_gid)
    info.mtime = int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    else:
        # Sockets, pipes and devices have no place in static pod resources and cannot be restored.
        _log.warning("not archiving %s: not a file, directory or symlink", path)
        return None
    # GNU format, as tar on the control-plane hosts writes it (long names, large ids).
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _file_data(path: Path, size: int) -> Iterator[bytes]:
    """Exactly ``size`` bytes of the file, then the padding to a whole block."""
    left = size
    with open(path, "rb") as file:
        while left:
            data = file.read(min(_READ_SIZE, left))
            if not data:
                raise ConflictError(
                    f"{path} shrank while it was archived ({size - left} of {size} bytes)",
                    hint="take the backup again",
                )
            left -= len(data)
            yield data
    pad = -size % _BLOCK
    if pad:
        yield bytes(pad)


@lru_cache(maxsize=64)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=64)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the archive: checking and restoring ----------------------------------------


@dataclass(frozen=True)
class Restored:
    """One top-level entry of the archive after a restore, and what happened to what was there."""

    relative: str  # "static-pod-resources/kube-apiserver-pod-7"
    outcome: Literal["created", "identical", "replaced"]
    moved_aside: Path | None = None  # where the differing directory that was there went


@dataclass
class _Plan:
    """The validated members to restore, by top-level entry under ``static-pod-resources``."""

    tops: dict[str, list[tuple[tarfile.TarInfo, tuple[str, ...]]]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def check_archive(archive: Path) -> list[str]:
    """Validate an archive without writing anything; the top-level entries it would restore."""
    with _open_archive(archive) as tar:
        plan = _plan(tar, archive)
    return [f"{ARCHIVE_TOP}/{top}" for top in plan.tops]


def extract_archive(archive: Path, host_root: Path) -> list[str]:
    """Restore ``static-pod-resources`` of the archive into ``<host_root>/etc/kubernetes``, as cluster-restore.sh.

    Returns the top-level entries restored (``static-pod-resources/<name>``);
    ``restore_resources`` says also what happened to what was there.
    """
    return [entry.relative for entry in restore_resources(archive, host_root)]


def restore_resources(archive: Path, host_root: Path) -> list[Restored]:
    """Restore the archive's static pod resources; nothing is written unless every member is safe.

    Each top-level directory is extracted next to its destination under a
    hidden name, then renamed into place. An existing directory of the same
    name is kept when it is identical (types, bytes, modes, link targets), and
    otherwise moved aside to ``static-pod-resources-before-restore-<timestamp>/<name>``
    next to ``static-pod-resources`` (outside it, so that cluster-backup.sh's
    ``<component>-pod-[0-9]*`` glob never takes it for a revision); nothing is
    deleted.
    """
    with _open_archive(archive) as tar:
        plan = _plan(tar, archive)
        for name in plan.ignored:
            _log.info("not restoring %s from %s: it is outside %s/", name, archive.name, ARCHIVE_TOP)
        dest_root = host_root / KUBERNETES_DIR / ARCHIVE_TOP
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        done: list[Restored] = []
        try:
            dest_root.mkdir(mode=0o755, parents=True, exist_ok=True)
            for top, members in plan.tops.items():
                done.append(_restore_top(tar, dest_root, top, members, stamp))
        except OSError as exc:
            already = ", ".join(r.relative for r in done) or "nothing"
            raise StrongroomError(
                f"restoring the static pod resources of {archive.name} failed: {exc.strerror or exc} "
                f"({exc.filename}); already restored: {already}",
                hint=f"free the space or fix the permissions of {dest_root}, then run the restore again",
            ) from exc
        _fsync_dir(dest_root)
    return done


@contextlib.contextmanager
def _open_archive(archive: Path) -> Iterator[tarfile.TarFile]:
    _verify_gzip(archive)
    try:
        tar = tarfile.open(archive, mode="r:gz")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UsageError(
            f"{archive} is not a gzip tar archive: {exc}",
            hint="pass the static_kuberesources_<timestamp>.tar.gz written with the snapshot",
        ) from exc
    with tar:
        yield tar


def _verify_gzip(archive: Path) -> None:
    """Read the whole stream once: tarfile stops quietly at a cut, gzip checks length and CRC."""
    try:
        with gzip.open(archive, "rb") as stream:
            while stream.read(_READ_SIZE):
                pass
    except FileNotFoundError as exc:
        raise NotFoundError(f"no archive at {archive}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(
            f"{archive} is damaged or not gzip: {exc}",
            hint="copy the static_kuberesources_<timestamp>.tar.gz again from where the backup was kept",
        ) from exc


def _member_parts(name: str) -> tuple[str, ...] | str:
    """The path of a member as parts, or why it is refused."""
    if name.startswith("/"):
        return "an absolute path"
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        return "a '..' component"
    return parts


def _plan(tar: tarfile.TarFile, archive: Path) -> _Plan:
    try:
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"{archive} is not a readable tar archive: {exc}") from exc
    problems: list[str] = []
    kinds: dict[tuple[str, ...], tarfile.TarInfo] = {}
    plan = _Plan()
    for info in members:
        parts = _member_parts(info.name)
        if isinstance(parts, str):
            problems.append(f"{info.name!r} has {parts}")
            continue
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            problems.append(f"{info.name!r} is a device or special file")
            continue
        if not parts:
            continue
        if parts[0] != ARCHIVE_TOP:
            plan.ignored.append(info.name)
            continue
        if len(parts) == 1:
            if not info.isdir():
                problems.append(f"{info.name!r} must be a directory")
            continue
        previous = kinds.get(parts)
        if previous is not None and not (previous.isdir() and info.isdir()):
            problems.append(f"{info.name!r} appears twice")
            continue
        kinds[parts] = info
        plan.tops.setdefault(parts[1], []).append((info, parts[2:]))
    for parts, info in kinds.items():
        for depth in range(2, len(parts)):
            above = kinds.get(parts[:depth])
            if above is not None and not above.isdir():
                problems.append(f"{info.name!r} lies under {above.name!r}, which is not a directory")
                break
    for info in kinds.values():
        problem = _link_problem(info, kinds)
        if problem:
            problems.append(problem)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UsageError(
            f"refusing {archive}: {shown}; nothing was written",
            hint="an archive of static pod resources holds only files, directories and links "
            f"inside {ARCHIVE_TOP}/; use one written by cluster-backup.sh or strongroom",
        )
    if not plan.tops:
        raise UsageError(
            f"{archive} holds no static pod resources (nothing under {ARCHIVE_TOP}/)",
            hint="pass the static_kuberesources_<timestamp>.tar.gz written with the snapshot",
        )
    return plan


def _link_problem(info: tarfile.TarInfo, kinds: Mapping[tuple[str, ...], tarfile.TarInfo]) -> str | None:
    if info.islnk():
        target = _member_parts(info.linkname)
        linked = kinds.get(target) if isinstance(target, tuple) else None
        if linked is None or not linked.isreg() or linked.offset >= info.offset:
            return f"hard link {info.name!r} points at {info.linkname!r}, not an earlier file of the archive"
        return None
    if not info.issym():
        return None
    if info.linkname.startswith("/"):
        return f"symlink {info.name!r} points at the absolute path {info.linkname!r}"
    parent = tuple(p for p in info.name.split("/") if p not in ("", "."))[:-1]
    if _resolve(parent, info.linkname, kinds, _MAX_LINK_HOPS) is None:
        return f"symlink {info.name!r} points at {info.linkname!r}, outside {ARCHIVE_TOP}/"
    return None


def _resolve(
    start: tuple[str, ...], target: str, kinds: Mapping[tuple[str, ...], tarfile.TarInfo], hops: int
) -> tuple[str, ...] | None:
    """Where ``target`` leads from the directory ``start``, through the archive's own links; None if out.

    Resolving lexically is not enough: ``a -> ..`` then ``b -> a/../x`` looks
    inside but leads out, so every link met on the way is followed too.
    """
    if hops <= 0 or target.startswith("/"):
        return None
    here = list(start)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(here) <= 1:  # above static-pod-resources/
                return None
            here.pop()
            continue
        here.append(part)
        link = kinds.get(tuple(here))
        if link is not None and link.issym():
            resolved = _resolve(tuple(here[:-1]), link.linkname, kinds, hops - 1)
            if resolved is None:
                return None
            here = list(resolved)
    return tuple(here) if here and here[0] == ARCHIVE_TOP else None


def _restore_top(
    tar: tarfile.TarFile,
    dest_root: Path,
    top: str,
    members: list[tuple[tarfile.TarInfo, tuple[str, ...]]],
    stamp: str,
) -> Restored:
    relative = f"{ARCHIVE_TOP}/{top}"
    staging = _free_name(dest_root / f".{top}.restoring-{stamp}")
    try:
        _extract_members(tar, staging, members)
        final = dest_root / top
        if not os.path.lexists(final):
            staging.rename(final)
            return Restored(relative, "created")
        if _same_tree(staging, final):
            _remove_staging(staging)
            return Restored(relative, "identical")
        aside_dir = dest_root.parent / f"{ARCHIVE_TOP}-before-restore-{stamp}"
        aside_dir.mkdir(mode=0o700, exist_ok=True)
        aside = _free_name(aside_dir / top)
        final.rename(aside)
        staging.rename(final)
        _log.info("moved the differing %s aside to %s", final, aside)
        return Restored(relative, "replaced", aside)
    except BaseException:
        if os.path.lexists(staging):
            _remove_staging(staging)
        raise


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.name}.{n}")
        n += 1
    return candidate


def _remove_staging(path: Path) -> None:
    """Remove a staging copy this restore made itself (never anything that was there before)."""
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, _ in os.walk(path):
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _extract_members(
    tar: tarfile.TarFile, staging: Path, members: list[tuple[tarfile.TarInfo, tuple[str, ...]]]
) -> None:
    owner = os.geteuid() == 0
    dirs: dict[Path, tarfile.TarInfo | None] = {}
    top = next((info for info, rel in members if not rel), None)
    if top is None or top.isdir():
        # The top entry is a directory, named in the archive or implied by its contents.
        staging.mkdir(mode=0o700)
        dirs[staging] = top
    for info, rel in members:
        path = staging.joinpath(*rel)
        if rel:
            _make_parents(path.parent, staging, dirs)
        if info.isdir():
            if path not in dirs:
                path.mkdir(mode=0o700)
            dirs[path] = info
            continue
        if info.issym():
            os.symlink(info.linkname, path)
        else:
            _write_file(tar, info, path)
        if owner:
            os.lchown(path, info.uid, info.gid)
        if not info.issym():
            os.chmod(path, info.mode & 0o7777)
        os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)
    # Directory modes last (a read-only directory must first receive its files), deepest first.
    for path, dir_info in sorted(dirs.items(), key=lambda item: len(item[0].parts), reverse=True):
        mode = dir_info.mode & 0o7777 if dir_info is not None else 0o755
        if owner and dir_info is not None:
            os.lchown(path, dir_info.uid, dir_info.gid)
        os.chmod(path, mode)
        if dir_info is not None:
            os.utime(path, (dir_info.mtime, dir_info.mtime))


def _make_parents(path: Path, staging: Path, dirs: dict[Path, tarfile.TarInfo | None]) -> None:
    """Create the directories between ``staging`` and ``path`` that the archive did not list."""
    missing: list[Path] = []
    while path != staging and path not in dirs:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        dirs[directory] = None


def _write_file(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> None:
    source = tar.extractfile(info)  # a hard link reads its target's data
    if source is None:
        raise UsageError(f"cannot read {info.name!r} from the archive")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        while data := source.read(_READ_SIZE):
            out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _same_tree(a: Path, b: Path) -> bool:
    """Same types, modes, bytes and link targets (owners and times are not compared)."""
    sa, sb = os.lstat(a), os.lstat(b)
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode) or stat.S_IMODE(sa.st_mode) != stat.S_IMODE(
        sb.st_mode
    ):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        return sa.st_size == sb.st_size and _same_bytes(a, b)
    if stat.S_ISDIR(sa.st_mode):
        names = sorted(os.listdir(a))
        if names != sorted(os.listdir(b)):
            return False
        return all(_same_tree(a / name, b / name) for name in names)
    return False


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                da, db = fa.read(_READ_SIZE), fb.read(_READ_SIZE)
                if da != db:
                    return False
                if not da:
                    return True
    except PermissionError:
        return False  # cannot tell: keep the existing one aside rather than assume


# -- the operators that must be idle ---------------------------------------------


async def progressing_operators(kube: KubeClient, discovery: Discovery) -> list[tuple[str, str]] | None:
    """The control-plane ClusterOperators that report ``Progressing=True``, with the condition's message.

    A backup taken while one of them rolls out a new revision may hold
    resources that do not match the snapshot. None when the cluster serves no
    ClusterOperators (plain Kubernetes), where there is nothing to ask.
    """
    res = discovery.served(CLUSTER_OPERATORS_GROUP, "v1", CLUSTER_OPERATORS) or discovery.find(
        CLUSTER_OPERATORS_GROUP, CLUSTER_OPERATORS
    )
    if res is None:
        return None
    busy: list[tuple[str, str]] = []
    for name in COMPONENTS:
        operator = await kube.get(res, name)
        if operator is None:
            continue
        for condition in _conditions(operator):
            if condition.get("type") == "Progressing" and condition.get("status") == "True":
                message = condition.get("message") or condition.get("reason") or ""
                busy.append((name, str(message)))
    return busy


def _conditions(operator: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = operator.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(conditions, list):
        return []
    return [c for c in conditions if isinstance(c, Mapping)]
