"""How a sandbox container runs: a local process under bubblewrap, its output in CRI log files.

There are no images here. A container's root is a directory of the node; the
host's ``/usr`` (with the ``/bin``, ``/lib`` symlinks), ``/etc``, ``/proc``,
``/dev`` and a private ``/tmp`` make ordinary commands work, and every volume
mount is a bind. The network is the host's, so loopback reaches the API server.
Output goes to log files in the format the CRI runtimes write
(``<RFC3339Nano> <stream> <F|P> <text>``), which is what ``pods/log`` reads.

Everything but :func:`spawn` and the signalling helpers is pure, so that the
argument building, command resolution and log filtering are tested without
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from strongroom.sandbox.runtime import LogOptions

__all__ = [
    "BWRAP",
    "ContainerProcess",
    "LogLine",
    "Mount",
    "SandboxSpec",
    "bwrap_argv",
    "container_argv",
    "expand_references",
    "format_log_line",
    "is_strongroom_image",
    "kill_group",
    "parse_log_line",
    "prepare_rootfs",
    "python_paths",
    "render_log",
    "select_log_lines",
    "signal_main",
    "spawn",
]

BWRAP = "bwrap"
IDLE_COMMAND = ["sleep", "infinity"]
"""What a container without a command runs: its image's entrypoint is unknown here, and exec needs a running container."""

_ROOT_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
_ROOT_DIRS = ("usr", "etc", "proc", "dev", "tmp", "var", "run")
_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


@dataclass(frozen=True)
class Mount:
    """A bind into the container: ``source`` on the host at ``target`` inside."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    """Everything bubblewrap needs to start one container process."""

    rootfs: Path
    argv: list[str]
    env: Mapping[str, str]
    working_dir: str = "/"
    mounts: list[Mount] = field(default_factory=list)
    read_only_paths: list[Path] = field(default_factory=list)
    """Host paths bound read-only at the same place (what Python needs to run strongroom)."""
    host_view: bool = False
    """See the host's own files (strongroom's pods): every top-level directory but the system's, and /tmp."""


# ------------------------------------------------------------------ commands


def is_strongroom_image(image: str) -> bool:
    """Whether the image is strongroom itself: its last path component, without tag or digest."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == "strongroom"


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """kubelet's ``$(VAR)`` expansion: defined variables are replaced, ``$$`` escapes, the rest stays."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def container_argv(container: Mapping[str, object], env: Mapping[str, str]) -> list[str]:
    """The process a container runs, with ``$(VAR)`` references in command and args expanded.

    An image of strongroom runs the local strongroom (``python -m strongroom``) with the
    arguments after its ``strongroom`` command; another command given for it runs as is.
    A container without a command idles, so that it is Running and exec works.
    """
    command = [expand_references(str(part), env) for part in _strings(container.get("command"))]
    args = [expand_references(str(part), env) for part in _strings(container.get("args"))]
    if is_strongroom_image(str(container.get("image") or "")):
        if not command:
            return [sys.executable, "-m", "strongroom", *args]
        if command[0] in ("strongroom", "/strongroom") or command[0].endswith("/strongroom"):
            return [sys.executable, "-m", "strongroom", *command[1:], *args]
    if command:
        return [*command, *args]
    if args:
        # kube runs the image's entrypoint with these args; with no image, the args are the command.
        return args
    return list(IDLE_COMMAND)


def _strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


# ------------------------------------------------------------------- bwrap


def python_paths() -> list[Path]:
    """What the strongroom command needs inside a container: the interpreter's prefixes and ``sys.path``."""
    seen: list[Path] = []
    for entry in [sys.prefix, sys.base_prefix, *sys.path]:
        if not entry:
            continue
        path = Path(entry).resolve()
        if not path.exists() or path == Path("/") or any(path == p or p in path.parents for p in seen):
            continue
        if str(path).startswith(("/usr/", "/etc/")) or path in (Path("/usr"), Path("/etc")):
            continue  # bound anyway
        seen = [p for p in seen if path not in p.parents]
        seen.append(path)
    return sorted(seen)


# Top-level directories a host-view container gets from its own root or bubblewrap, not from the host.
_NOT_SHARED = frozenset(
    {
        "proc",
        "dev",
        "sys",
        "tmp",
        "usr",
        "etc",
        "bin",
        "sbin",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "run",
        "boot",
        # The node's own: kubelet mounts service-account tokens under /var/run.
        "var",
        # The host's home of root holds its kubeconfig, which clients prefer to the service account.
        "root",
    }
)


def host_view_paths(root: Path = Path("/")) -> list[Path]:
    """The host's top-level directories a strongroom pod sees (its data may live anywhere on the host)."""
    return sorted(
        path
        for path in root.iterdir()
        if path.name not in _NOT_SHARED and path.is_dir() and not path.is_symlink()
    )


def prepare_rootfs(rootfs: Path) -> None:
    """Create the mount points and the ``/bin``-style symlinks bubblewrap binds over."""
    rootfs.mkdir(parents=True, exist_ok=True)
    for name in _ROOT_DIRS:
        (rootfs / name).mkdir(exist_ok=True)
    for name, target in _ROOT_LINKS.items():
        link = rootfs / name
        if not link.is_symlink() and not link.exists():
            link.symlink_to(target)


def system_binds(host_dir: Path, targets: list[str]) -> list[str]:
    """Read-only binds of a host system directory that leave room for the container's mounts inside it.

    A volume mounted under ``/usr`` or ``/etc`` (``/usr/share/nginx/html``, a
    config map at ``/etc/config``) needs a mount point the read-only host
    directory does not have: along the path to each such mount, the directory
    is made in the container's own root and the host's entries beside the path
    are bound one by one.
    """
    prefix = f"{host_dir}/"
    inside = [target.rstrip("/") for target in targets if target.startswith(prefix)]
    if not inside or not host_dir.is_dir():
        return ["--ro-bind", str(host_dir), str(host_dir)]
    on_path = {target[len(prefix) :].split("/", 1)[0] for target in inside}
    argv = ["--dir", str(host_dir)]
    for entry in sorted(host_dir.iterdir(), key=lambda path: path.name):
        if entry.is_symlink():
            argv += ["--symlink", os.readlink(entry), str(entry)]
        elif entry.name not in on_path:
            argv += ["--ro-bind", str(entry), str(entry)]
        elif entry.is_dir():
            argv += system_binds(entry, inside)
        # A file where a mount goes: the mount takes its place.
    return argv


def bwrap_argv(spec: SandboxSpec, bwrap: str = BWRAP) -> list[str]:
    """The bubblewrap command line for a container: its root, the host's system dirs, its mounts.

    Binds come after ``/tmp`` so that a volume or Python path under ``/tmp`` is
    visible; mounts are ordered by depth so that a mount inside another lands on it.
    """
    targets = [mount.target for mount in spec.mounts]
    argv = [
        bwrap,
        "--bind",
        str(spec.rootfs),
        "/",
        *system_binds(Path("/usr"), targets),
        *system_binds(Path("/etc"), targets),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    if spec.host_view:
        # strongroom's own pods run the host's strongroom on the host's files, as a local
        # location, a scratch directory or a test's temporary directory may be anywhere.
        argv += ["--bind", "/tmp", "/tmp"]
        for path in host_view_paths():
            argv += ["--bind", str(path), str(path)]
    else:
        argv += ["--tmpfs", "/tmp"]
    shared = host_view_paths() if spec.host_view else []
    for path in spec.read_only_paths:
        # A host-view container sees these writable already (a read-only bind would hide its
        # data under the project directory, such as a local backup location there).
        if not any(path == top or top in path.parents for top in shared):
            argv += ["--ro-bind", str(path), str(path)]
    for mount in sorted(spec.mounts, key=lambda m: m.target.rstrip("/").count("/")):
        argv += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    argv += ["--chdir", spec.working_dir or "/", "--die-with-parent", "--clearenv"]
    for name, value in spec.env.items():
        argv += ["--setenv", name, value]
    argv += ["--", *spec.argv]
    return argv


# ------------------------------------------------------------------ processes


@dataclass
class ContainerProcess:
    """A started container: bubblewrap's process (its group holds the container's processes)."""

    process: asyncio.subprocess.Process
    log_path: Path
    pumps: list[asyncio.Task[None]]

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    async def wait(self) -> int:
        """The container's exit code, after its output is in the log file.

        A container ends with its first process: what it left running (holding the
        output pipes open) is killed, as the runtime kills the rest of a container.
        """
        code = await self.process.wait()
        kill_group(self.pid)
        await asyncio.gather(*self.pumps, return_exceptions=True)
        return code if code >= 0 else 128 - code


async def spawn(spec: SandboxSpec, log_path: Path, *, bwrap: str = BWRAP) -> ContainerProcess:
    """Start the container with its output appended to ``log_path``; raises OSError when it cannot start."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Pipes of our own rather than asyncio's: asyncio's wait() also waits for its pipes
    # to close, which a process the container left behind would hold open.
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *bwrap_argv(spec, bwrap),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            start_new_session=True,
        )
    except BaseException:
        for fd in (out_read, err_read):
            os.close(fd)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    lock = asyncio.Lock()
    handle = log_path.open("ab")
    pumps = [
        asyncio.create_task(_pump(await _reader(out_read), "stdout", handle, lock)),
        asyncio.create_task(_pump(await _reader(err_read), "stderr", handle, lock)),
    ]

    def close(_: object) -> None:
        if all(p.done() for p in pumps):
            handle.close()

    for pump in pumps:
        pump.add_done_callback(close)
    return ContainerProcess(process, log_path, pumps)


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader


async def _pump(stream: asyncio.StreamReader, name: str, handle: object, lock: asyncio.Lock) -> None:
    """Copy one output stream into the log file, a CRI log line per line of output."""
    while True:
        try:
            chunk = await stream.readuntil(b"\n")
            partial = False
        except asyncio.IncompleteReadError as exc:
            chunk, partial = exc.partial, True
            if not chunk:
                return
        except asyncio.LimitOverrunError as exc:
            chunk, partial = await stream.readexactly(exc.consumed), True
        line = format_log_line(time.time_ns(), name, chunk.rstrip(b"\n"), partial=partial)
        async with lock:
            handle.write(line)  # type: ignore[attr-defined]
            handle.flush()  # type: ignore[attr-defined]


def signal_main(pid: int, sig: int) -> None:
    """Signal the container's own processes, not bubblewrap: bubblewrap would die and SIGKILL them.

    A runtime sends the stop signal to the container's first process; here those
    are bubblewrap's children.
    """
    for child in _children(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, sig)


def kill_group(pid: int) -> None:
    """SIGKILL everything in the container: its process group (whose leader is bubblewrap) and every
    descendant that started a session of its own, as a runtime kills the whole container cgroup."""
    descendants = _descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        children = _children(pending.pop())
        found += children
        pending += children
    return found


def _children(pid: int) -> list[int]:
    try:
        # Each thread's children: a process started from a worker thread is listed under that thread.
        return [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except (OSError, ValueError):
        pass
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


# ---------------------------------------------------------------------- logs


@dataclass(frozen=True)
class LogLine:
    """One line of a CRI log file."""

    time_ns: int
    stream: str
    partial: bool
    content: bytes

    def timestamp(self) -> str:
        return rfc3339_nano(self.time_ns)


def rfc3339_nano(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{fraction:09d}Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nanosecond precision."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    zone = match.group(3)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        base -= sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    fraction = int((match.group(2) or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + fraction


def format_log_line(ns: int, stream: str, content: bytes, *, partial: bool = False) -> bytes:
    """A CRI log line: time, stream, full/partial tag, content."""
    return f"{rfc3339_nano(ns)} {stream} {'P' if partial else 'F'} ".encode() + content + b"\n"


def parse_log_line(raw: bytes) -> LogLine | None:
    """The parts of a CRI log line; None for a malformed one."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    try:
        ns = parse_rfc3339(parts[0].decode())
    except (ValueError, UnicodeDecodeError):
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogLine(ns, parts[1].decode(errors="replace"), parts[2] == b"P", content)


def select_log_lines(lines: Iterable[LogLine], options: LogOptions, now_ns: int) -> list[LogLine]:
    """kubelet's filtering: lines since ``sinceSeconds`` ago, then the last ``tailLines`` of them."""
    selected = list(lines)
    if options.since_seconds is not None:
        cutoff = now_ns - options.since_seconds * 1_000_000_000
        selected = [line for line in selected if line.time_ns >= cutoff]
    if options.tail_lines is not None:
        # Partial lines belong to the full line after them: count full lines only.
        full_seen = 0
        start = len(selected)
        for index in range(len(selected) - 1, -1, -1):
            if not selected[index].partial:
                if full_seen == options.tail_lines:
                    break
                full_seen += 1
            start = index
        selected = selected[start:] if options.tail_lines > 0 else []
    return selected


def render_log(lines: Iterable[LogLine], *, timestamps: bool) -> bytes:
    """What ``kubectl logs`` prints for these lines."""
    out = bytearray()
    for line in lines:
        if timestamps:
            out += line.timestamp().encode() + b" "
        out += line.content
        if not line.partial:
            out += b"\n"
    return bytes(out)
