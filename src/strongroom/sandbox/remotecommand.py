"""``pods/exec`` over the websocket remote-command protocol, as kube-apiserver and the kubelet serve it.

kubectl (1.30 and later), client-go and the Python clients run a command in a
container by upgrading ``GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec`` to a
websocket. Every binary message carries one byte naming its channel (0 stdin,
1 stdout, 2 stderr, 3 error, 4 resize) and then the payload; the server ends the
session with a ``metav1.Status`` on channel 3 and closes the socket, and that
status is how clients learn the exit code. ``v5.channel.k8s.io`` adds channel
255, on which the client closes one of its streams (stdin: ``[255, 0]``), so a
command reading its input to the end finishes. The ``base64`` variants send
text messages: the channel as an ASCII digit, then the payload in base64. The
unversioned protocols report a failure on channel 3 as plain text instead of a
Status.

What fails before the upgrade (bad options, no such pod or container) is a plain
HTTP Status, as kube-apiserver answers it: kubectl prints it ("Error from server
(NotFound): ...") and, when the websocket upgrade failed, retries over SPDY,
which the sandbox does not speak, so that answer repeats the same error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import Engine, Target
from strongroom.sandbox.runtime import PodRuntime

__all__ = [
    "CLOSE_CHANNEL",
    "ERROR_CHANNEL",
    "PROTOCOLS",
    "RESIZE_CHANNEL",
    "STDERR_CHANNEL",
    "STDIN_CHANNEL",
    "STDOUT_CHANNEL",
    "ExecOptions",
    "Protocol",
    "decode_frame",
    "encode_frame",
    "exit_status",
    "failure_status",
    "parse_exec_options",
    "serve_exec",
    "start_failure_status",
    "success_status",
]

log = logging.getLogger(__name__)

STDIN_CHANNEL = 0
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
ERROR_CHANNEL = 3
RESIZE_CHANNEL = 4
CLOSE_CHANNEL = 255  # v5: the client closes the stream whose id follows

_CHUNK = 32 * 1024  # the most output one message carries, as the kubelet's copy buffer
_MAX_MESSAGE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Protocol:
    """One websocket subprotocol: its framing and how it reports the end of a command."""

    name: str
    binary: bool  # False: text messages, channel digit + base64 payload
    status_json: bool  # True: channel 3 carries a metav1.Status; False: the failure message as text
    close_stream: bool  # True: channel 255 closes a client stream (v5)


# In the order the server prefers them when a client offers several.
PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("v5.channel.k8s.io", binary=True, status_json=True, close_stream=True),
    Protocol("v4.channel.k8s.io", binary=True, status_json=True, close_stream=False),
    Protocol("v4.base64.channel.k8s.io", binary=False, status_json=True, close_stream=False),
    Protocol("channel.k8s.io", binary=True, status_json=False, close_stream=False),
    Protocol("base64.channel.k8s.io", binary=False, status_json=False, close_stream=False),
)
_BY_NAME = {p.name: p for p in PROTOCOLS}
_UNNAMED = _BY_NAME["channel.k8s.io"]  # a client that names no subprotocol gets the first binary one


# ------------------------------------------------------------------ framing


def encode_frame(protocol: Protocol, channel: int, payload: bytes) -> bytes | str:
    """One message: the channel, then the payload (base64 text for the base64 protocols)."""
    if protocol.binary:
        return bytes([channel]) + payload
    return chr(ord("0") + channel) + base64.b64encode(payload).decode("ascii")


def decode_frame(protocol: Protocol, message: bytes | str) -> tuple[int, bytes]:
    """The channel and payload of one message; ValueError when it is not a frame of ``protocol``."""
    if protocol.binary:
        data = message.encode() if isinstance(message, str) else message
        if not data:
            raise ValueError("an empty message names no channel")
        return data[0], data[1:]
    text = message.decode("ascii", errors="replace") if isinstance(message, bytes) else message
    if not text:
        raise ValueError("an empty message names no channel")
    try:
        payload = base64.b64decode(text[1:], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the payload is not base64: {exc}") from exc
    return ord(text[0]) - ord("0"), payload


# ------------------------------------------------------------------ status


def success_status() -> dict[str, Any]:
    """What channel 3 carries when the command exited 0."""
    return {"metadata": {}, "status": "Success"}


def exit_status(command: Sequence[str], exit_code: int) -> dict[str, Any]:
    """The kubelet's status for a command that exited non-zero; clients read the code from the cause."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def failure_status(message: str) -> dict[str, Any]:
    """The kubelet's status when the command could not run at all (an internal error, code 500)."""
    text = f"Internal error occurred: {message}"
    return {
        "metadata": {},
        "status": "Failure",
        "message": text,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def start_failure_status(command: Sequence[str], exc: OSError) -> dict[str, Any]:
    """The status for a command the runtime could not start, worded as containerd and runc word it."""
    executable = command[0] if command else ""
    if isinstance(exc, FileNotFoundError):
        why = f'exec: "{executable}": executable file not found in $PATH'
    elif isinstance(exc, PermissionError):
        why = f'exec: "{executable}": permission denied'
    else:
        why = f'exec: "{executable}": {exc.strerror or exc}'
    return failure_status(
        "error executing command in container: failed to exec in container: OCI runtime exec failed: "
        f"exec failed: unable to start container process: {why}: unknown"
    )


def _status_payload(protocol: Protocol, status: dict[str, Any]) -> bytes:
    if protocol.status_json:
        return json.dumps(status, separators=(",", ":")).encode()
    # The unversioned protocols write nothing on success and the bare message on failure.
    return b"" if status.get("status") == "Success" else str(status.get("message", "")).encode()


# ------------------------------------------------------------------ options


@dataclass(frozen=True)
class ExecOptions:
    """The query of a ``pods/exec`` request (PodExecOptions)."""

    command: tuple[str, ...]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _bool(values: list[str] | None) -> bool:
    """A query boolean as kube-apiserver converts it: absent, "", "0", "f" and "false" are false."""
    if not values:
        return False
    return values[0].lower() not in ("", "0", "f", "false")


def parse_exec_options(query_string: str) -> ExecOptions:
    """PodExecOptions from the query; ApiError 400 when no command or no stream is asked for."""
    query = parse_qs(query_string, keep_blank_values=True)
    command = tuple(query.get("command", []))
    tty = _bool(query.get("tty"))
    options = ExecOptions(
        command=command,
        container=(query.get("container") or [""])[0] or None,
        stdin=_bool(query.get("stdin")),
        stdout=_bool(query.get("stdout")),
        # With a terminal, stderr is part of stdout: the kubelet drops the separate stream.
        stderr=_bool(query.get("stderr")) and not tty,
        tty=tty,
    )
    if not command or not command[0]:
        raise apierrors.bad_request("you must specify at least one command for the container")
    if not (options.stdin or options.stdout or options.stderr):
        raise apierrors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return options


# ------------------------------------------------------------------ pre-upgrade checks


async def _check_pod(engine: Engine, namespace: str, name: str, container: str | None) -> None:
    """What kube-apiserver checks itself before it proxies to the kubelet: pod, container, node."""
    rt = engine.registry.lookup("", "v1", "pods")
    if rt is None:  # the core kinds are always registered; guard for the type checker
        raise apierrors.internal("pods are not served")
    pod = await engine.get(Target(rt, namespace, name))  # 404 pods "x" not found
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    init_names = [str(c.get("name")) for c in spec.get("initContainers") or []]
    ephemeral = [str(c.get("name")) for c in spec.get("ephemeralContainers") or []]
    if container is None:
        if len(names) > 1:
            raise apierrors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
            )
        if not names:
            raise apierrors.bad_request(f"a container name must be specified for pod {name}")
    elif container not in (*names, *init_names, *ephemeral):
        raise apierrors.bad_request(f"container {container} is not valid for pod {name}")
    if not spec.get("nodeName"):
        raise apierrors.bad_request(f"pod {name} does not have a host assigned")


def _is_websocket(request: web.Request) -> bool:
    upgrade = request.headers.get("Upgrade", "").lower()
    connection = request.headers.get("Connection", "").lower()
    return upgrade == "websocket" and "upgrade" in connection


def _negotiate(request: web.Request) -> Protocol:
    """The subprotocol: the first the client offers that the server speaks, as the kubelet picks."""
    header = request.headers.get("Sec-WebSocket-Protocol")
    if header is None:
        return _UNNAMED
    offered = [p.strip() for p in header.split(",") if p.strip()]
    for name in offered:
        if name in _BY_NAME:
            return _BY_NAME[name]
    raise apierrors.bad_request(
        f"requested protocol(s) are not supported: [{' '.join(offered)}]; "
        f"supports [{' '.join(p.name for p in PROTOCOLS)}]"
    )


def _not_upgraded(request: web.Request) -> apierrors.ApiError:
    upgrade = request.headers.get("Upgrade", "")
    if upgrade.lower().startswith("spdy"):
        return apierrors.bad_request(
            "the sandbox serves pods/exec over websockets only "
            f"({', '.join(p.name for p in PROTOCOLS[:2])}), not over {upgrade}: use kubectl 1.30 or later "
            "or a client that speaks the websocket remote-command protocol"
        )
    return apierrors.bad_request("Upgrade request required")


# ------------------------------------------------------------------ the session


async def serve_exec(
    request: web.Request, engine: Engine, runtime: PodRuntime | None, namespace: str, pod: str
) -> web.StreamResponse:
    """Serve one ``pods/exec`` request: errors before the upgrade as HTTP, then the websocket session."""
    if request.method not in ("GET", "POST"):
        raise apierrors.method_not_allowed()
    options = parse_exec_options(request.query_string)
    await _check_pod(engine, namespace, pod, options.container)
    if not _is_websocket(request):
        raise _not_upgraded(request)
    protocol = _negotiate(request)
    if runtime is None:
        raise apierrors.ApiError(
            503, "ServiceUnavailable", "the sandbox runs no containers: pods/exec is not available"
        )
    ws = web.WebSocketResponse(
        protocols=[protocol.name] if request.headers.get("Sec-WebSocket-Protocol") else (),
        autoping=True,
        max_msg_size=_MAX_MESSAGE,
    )
    try:
        process = await runtime.exec(
            namespace, pod, options.container, list(options.command), tty=options.tty
        )
    except OSError as exc:  # the runtime could not start it: the kubelet reports that on channel 3
        await ws.prepare(request)
        session = _Session(ws, protocol, options, None)
        await session.finish(start_failure_status(options.command, exc))
        return ws
    await ws.prepare(request)
    await _Session(ws, protocol, options, process).run()
    return ws


class _Session:
    """One upgraded exec: pumps output out, stdin in, and reports the exit status on channel 3."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        protocol: Protocol,
        options: ExecOptions,
        process: asyncio.subprocess.Process | None,
    ) -> None:
        self.ws = ws
        self.protocol = protocol
        self.options = options
        self.process = process
        self._send_lock = asyncio.Lock()

    async def send(self, channel: int, payload: bytes) -> None:
        frame = encode_frame(self.protocol, channel, payload)
        async with self._send_lock:
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_str(frame)

    async def finish(self, status: dict[str, Any]) -> None:
        """Write the status and close: clients read channel 3 to its end, which the close marks."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(ERROR_CHANNEL, _status_payload(self.protocol, status))
            await self.ws.close()

    async def run(self) -> None:
        process = self.process
        assert process is not None
        if not self.options.stdin and process.stdin is not None:
            process.stdin.close()
        # The kubelet announces the session with an empty message on the lowest channel it writes.
        first = (
            STDOUT_CHANNEL
            if self.options.stdout
            else STDERR_CHANNEL
            if self.options.stderr
            else ERROR_CHANNEL
        )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(first, b"")
        completion = asyncio.create_task(self._complete(process))
        receiver = asyncio.create_task(self._receive(process))
        try:
            await asyncio.wait({completion, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if completion.done():
                await self.finish(completion.result())
            else:  # the client went away before the command ended: end it, as the kubelet does
                _kill(process)
        finally:
            for task in (completion, receiver):
                task.cancel()
            await asyncio.gather(completion, receiver, return_exceptions=True)
            if process.returncode is None:
                _kill(process)
                await process.wait()

    async def _complete(self, process: asyncio.subprocess.Process) -> dict[str, Any]:
        """Forward the outputs until both end, then wait for the exit code."""
        stdout_channel = STDOUT_CHANNEL if self.options.stdout else None
        stderr_channel: int | None = STDERR_CHANNEL if self.options.stderr else None
        if self.options.tty:
            stderr_channel = stdout_channel  # a terminal has one output
        await asyncio.gather(
            self._pump(process.stdout, stdout_channel), self._pump(process.stderr, stderr_channel)
        )
        code = await process.wait()
        if code < 0:
            code = 128 - code  # killed by a signal: the shell's convention, as runc reports it
        return success_status() if code == 0 else exit_status(self.options.command, code)

    async def _pump(self, stream: asyncio.StreamReader | None, channel: int | None) -> None:
        """Send each chunk as it comes; a stream the client did not ask for is read and dropped."""
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            if channel is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.send(channel, chunk)

    async def _receive(self, process: asyncio.subprocess.Process) -> None:
        """Pass stdin through until the client closes the socket; resize messages are accepted and ignored."""
        async for message in self.ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            try:
                channel, payload = decode_frame(self.protocol, message.data)
            except ValueError as exc:
                log.debug("exec: ignoring a malformed message: %s", exc)
                continue
            if channel == STDIN_CHANNEL and self.options.stdin:
                await _write_stdin(process, payload)
            elif (
                channel == CLOSE_CHANNEL
                and self.protocol.close_stream
                and payload[:1] == bytes([STDIN_CHANNEL])
                and process.stdin is not None
            ):
                process.stdin.close()
            # RESIZE_CHANNEL: the sandbox runs commands without a real terminal; sizes do not matter.


async def _write_stdin(process: asyncio.subprocess.Process, data: bytes) -> None:
    stdin = process.stdin
    if stdin is None or stdin.is_closing() or not data:
        return
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command stopped reading; its exit status tells the rest


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the command's whole process group: what it started must not outlive the session.

    The command runs in a session of its own (its pid is its group), so killing only it
    would leave its children (``sh -c 'sleep 300; true'`` leaves the sleep) running.
    """
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
