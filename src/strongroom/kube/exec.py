"""Run a command in a container (``pods/exec``), as backup and restore hooks need.

The API server runs the command through the websocket remote-command protocol:
the request to ``/api/v1/namespaces/{ns}/pods/{name}/exec`` is upgraded to a
websocket on which every binary message is one channel byte (0 stdin, 1 stdout,
2 stderr, 3 error/status, 4 resize) and the payload. The server ends the
session with a ``metav1.Status`` on channel 3 and closes the socket; the exit
code is a cause of that status. ``v5.channel.k8s.io`` (Kubernetes 1.30+) lets the
client close stdin with a message on channel 255, so a command that reads its
input to the end (``cat``, ``psql < dump``) finishes; ``v4.channel.k8s.io``
(every supported Kubernetes) cannot, so stdin is only sent, never closed, there.

The websocket goes through the ``KubeClient``'s own pooled session, so the
TLS trust, client certificate, token and proxy are the ones every other
request uses. Outputs are kept up to a bound (a hook that prints a database
would otherwise fill the memory); the result says when it cut them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from strongroom.kube.client import KubeClient, UpgradeTransport
from strongroom.kube.errors import KubeError, KubeUnavailable, error_from_response, redact

__all__ = [
    "CLOSE_CHANNEL",
    "DEFAULT_OUTPUT_LIMIT",
    "ERROR_CHANNEL",
    "PROTOCOLS",
    "STDERR_CHANNEL",
    "STDIN_CHANNEL",
    "STDOUT_CHANNEL",
    "V4_PROTOCOL",
    "V5_PROTOCOL",
    "ExecFailed",
    "ExecResult",
    "ExecTimeout",
    "close_message",
    "decode_message",
    "encode_message",
    "exec_command",
    "exec_path",
    "exec_query",
    "exit_code_from_status",
]

_log = logging.getLogger(__name__)

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
PROTOCOLS = (V5_PROTOCOL, V4_PROTOCOL)  # in order of preference; the server picks the first it speaks

STDIN_CHANNEL = 0
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
ERROR_CHANNEL = 3
CLOSE_CHANNEL = 255

DEFAULT_OUTPUT_LIMIT = 16 * 1024 * 1024  # per stream
_STDIN_CHUNK = 32 * 1024
_MAX_STATUS = 64 * 1024  # a metav1.Status is small; more on channel 3 is a broken server
_ERROR_BODY_LIMIT = 64 * 1024
_ERROR_PROBE_TIMEOUT = 30.0
_MIB = 1024 * 1024


@dataclass(frozen=True)
class ExecResult:
    """How the command ended and what it printed (each output cut at the limit, flagged when cut)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class ExecFailed(KubeError):
    """The command did not run to an exit code: it could not start, or the session broke off."""


class ExecTimeout(KubeError, TimeoutError):
    """The command did not finish in time; its stream was closed and the command abandoned."""


# ------------------------------------------------------------------ protocol


def exec_path(namespace: str, pod: str) -> str:
    """``/api/v1/namespaces/{namespace}/pods/{pod}/exec``."""
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"


def exec_query(command: Sequence[str], container: str | None, *, stdin: bool) -> list[tuple[str, str]]:
    """PodExecOptions as query parameters: one ``command`` per argument, both outputs, no terminal."""
    query = [("command", arg) for arg in command]
    if container:
        query.append(("container", container))
    query += [
        ("stdin", "true" if stdin else "false"),
        ("stdout", "true"),
        ("stderr", "true"),
        ("tty", "false"),
    ]
    return query


def encode_message(channel: int, payload: bytes) -> bytes:
    """One binary message of the v4/v5 protocols: the channel byte, then the payload."""
    if not 0 <= channel <= 255:
        raise ValueError(f"a channel is one byte, not {channel}")
    return bytes([channel]) + payload


def decode_message(message: bytes) -> tuple[int, bytes]:
    """The channel and payload of one binary message; ValueError for an empty message."""
    if not message:
        raise ValueError("an empty message names no channel")
    return message[0], message[1:]


def close_message(channel: int) -> bytes:
    """v5: the message that closes one of the client's streams (stdin: ``[255, 0]``)."""
    return encode_message(CLOSE_CHANNEL, bytes([channel]))


def exit_code_from_status(status: Any) -> int:
    """The exit code a channel-3 status reports, as client-go reads it.

    ``Success`` is 0; ``Failure`` with reason ``NonZeroExitCode`` carries the code
    as the message of its ``ExitCode`` cause. Any other failure means the command
    did not run to an exit (it could not start, the container went away): ExecFailed
    with the server's message.
    """
    if not isinstance(status, dict):
        raise ExecFailed("the exec status is not a JSON object", reason="InvalidResponse")
    outcome = status.get("status")
    if outcome == "Success":
        return 0
    if outcome != "Failure":
        raise ExecFailed(
            f"the exec status is neither Success nor Failure: {outcome!r}", reason="InvalidResponse"
        )
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "the command failed")
    if reason != "NonZeroExitCode":
        code = status.get("code")
        raise ExecFailed(message, status=code if isinstance(code, int) else None, reason=reason)
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    for cause in causes if isinstance(causes, list) else []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            text = str(cause.get("message", ""))
            if text.isdigit():
                return int(text)
            raise ExecFailed(f"the exec status has an invalid exit code {text!r}", reason="InvalidResponse")
    raise ExecFailed(f"the exec status gives no exit code: {message}", reason="InvalidResponse")


class _Bounded:
    """An output buffer that keeps the first ``limit`` bytes and remembers whether more came."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.parts.append(data)
            self.size += len(data)

    def value(self) -> bytes:
        return b"".join(self.parts)


# ------------------------------------------------------------------ the client


async def exec_command(
    client: KubeClient,
    namespace: str,
    pod: str,
    container: str | None,
    command: list[str],
    *,
    stdin: bytes | None = None,
    timeout: float | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> ExecResult:
    """Run ``command`` in ``container`` (None: the pod's only one) and wait for its exit code.

    A non-zero exit is a result, not an error. Raises the kube errors for HTTP
    failures (``KubeNotFound`` for no such pod, ``KubeError`` 400 for a bad
    container), ``ExecFailed`` when the command could not run to an exit,
    ``ExecTimeout`` (also a ``TimeoutError``) after ``timeout`` seconds.
    """
    _validate(namespace, pod, command, timeout, output_limit)
    transport = await client.upgrade_transport()
    path = exec_path(namespace, pod)
    query = exec_query(command, container, stdin=stdin is not None)
    what = f"command {' '.join(command)!r} in pod {namespace}/{pod}"
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await _run(transport, path, query, stdin, output_limit, what)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise ExecTimeout(
            f"the {what} did not finish within {timeout:g}s; its stream was closed and the command "
            "abandoned (it may still be running in the container)",
            reason="Timeout",
            method="GET",
            path=path,
        ) from exc


def _validate(
    namespace: str, pod: str, command: Sequence[str], timeout: float | None, output_limit: int
) -> None:
    if not namespace or not pod:
        raise ValueError("exec needs the namespace and the name of the pod")
    if not command or not command[0]:
        raise ValueError("exec needs a command: a non-empty list whose first item is the program")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"the exec timeout must be positive, not {timeout:g}")
    if output_limit < 0:
        raise ValueError(f"the output limit must not be negative, not {output_limit}")


async def _run(
    transport: UpgradeTransport,
    path: str,
    query: list[tuple[str, str]],
    stdin: bytes | None,
    output_limit: int,
    what: str,
) -> ExecResult:
    ws = await _connect(transport, path, query)
    async with ws:
        if ws.protocol not in PROTOCOLS:
            raise ExecFailed(
                f"the API server answered the exec of the {what} without a remote-command protocol this "
                f"client speaks (offered {', '.join(PROTOCOLS)}, got {ws.protocol or 'none'})",
                reason="UnsupportedProtocol",
                path=path,
            )
        sender = asyncio.create_task(_send_stdin(ws, stdin)) if stdin is not None else None
        try:
            stdout, stderr, status = await _receive(ws, output_limit)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                    await sender
    if not status:
        raise ExecFailed(
            f"the exec stream of the {what} closed before the command's exit status arrived",
            reason="StreamClosed",
            path=path,
        )
    try:
        doc = json.loads(status)
    except ValueError as exc:
        raise ExecFailed(
            f"the exec status of the {what} is not JSON: {status[:200]!r}",
            reason="InvalidResponse",
            path=path,
        ) from exc
    exit_code = exit_code_from_status(doc)
    for name, buffer in (("stdout", stdout), ("stderr", stderr)):
        if buffer.truncated:
            _log.warning(
                "the %s printed more than %s on %s; kept the first %s",
                what,
                _size(output_limit),
                name,
                _size(output_limit),
            )
    return ExecResult(exit_code, stdout.value(), stderr.value(), stdout.truncated, stderr.truncated)


def _size(count: int) -> str:
    return f"{count / _MIB:g} MiB" if count >= _MIB else f"{count} bytes"


async def _connect(
    transport: UpgradeTransport, path: str, query: list[tuple[str, str]]
) -> aiohttp.ClientWebSocketResponse:
    url = transport.server.rstrip("/") + path
    try:
        return await transport.session.ws_connect(
            url,
            params=query,
            headers=transport.headers,
            protocols=PROTOCOLS,
            proxy=transport.proxy,
            proxy_headers=transport.proxy_headers,
            server_hostname=transport.server_hostname,
            autoping=True,
            max_msg_size=0,  # the server sends what the command prints, in chunks of its choosing
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise await _handshake_error(transport, url, path, query, exc) from exc
    except (aiohttp.ClientError, OSError) as exc:
        detail = redact(str(exc) or type(exc).__name__, transport.secrets)
        raise KubeUnavailable(
            f"cannot reach the Kubernetes API server at {transport.server}: {detail}",
            hint="check the kubeconfig and that the API server is reachable from here",
            method="GET",
            path=path,
        ) from exc


async def _handshake_error(
    transport: UpgradeTransport,
    url: str,
    path: str,
    query: list[tuple[str, str]],
    exc: aiohttp.WSServerHandshakeError,
) -> KubeError:
    """The error for a refused upgrade, with the server's metav1.Status when it can be had.

    aiohttp drops the body of a refused upgrade. The API server checks the pod,
    the container and the credentials before it looks at the upgrade, so the
    same request without one (which starts nothing) gets the same Status: its
    body is used when its code matches.
    """
    body = b""
    if exc.status >= 400:
        try:
            async with transport.session.get(
                url,
                params=query,
                headers=transport.headers,
                proxy=transport.proxy,
                proxy_headers=transport.proxy_headers,
                server_hostname=transport.server_hostname,
                timeout=aiohttp.ClientTimeout(total=_ERROR_PROBE_TIMEOUT),
            ) as response:
                if response.status == exc.status:
                    body = await response.content.read(_ERROR_BODY_LIMIT)
        except (aiohttp.ClientError, OSError, TimeoutError):
            body = b""
    elif exc.status == 101:
        return ExecFailed(
            f"GET {path}: the API server's websocket upgrade is malformed ({exc.message})",
            reason="InvalidResponse",
            method="GET",
            path=path,
        )
    return error_from_response(exc.status, body, method="GET", path=path, secrets=transport.secrets)


async def _send_stdin(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    """Send the input in chunks, then close stdin (v5 only: v4 has no way to say it ended)."""
    for start in range(0, len(data), _STDIN_CHUNK):
        await ws.send_bytes(encode_message(STDIN_CHANNEL, data[start : start + _STDIN_CHUNK]))
    if ws.protocol == V5_PROTOCOL:
        await ws.send_bytes(close_message(STDIN_CHANNEL))
    else:
        _log.debug("exec over %s: stdin sent but cannot be closed", ws.protocol)


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, output_limit: int
) -> tuple[_Bounded, _Bounded, bytes]:
    """Collect stdout, stderr and the status until the server closes the socket."""
    stdout, stderr = _Bounded(output_limit), _Bounded(output_limit)
    status = bytearray()
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            data: bytes = message.data
        elif message.type == aiohttp.WSMsgType.TEXT:
            data = str(message.data).encode()
        elif message.type == aiohttp.WSMsgType.ERROR:
            raise ExecFailed(f"the exec stream broke off: {ws.exception()}", reason="StreamClosed")
        else:
            continue
        if not data:
            continue
        channel, payload = decode_message(data)
        if channel == STDOUT_CHANNEL:
            stdout.add(payload)
        elif channel == STDERR_CHANNEL:
            stderr.add(payload)
        elif channel == ERROR_CHANNEL and len(status) < _MAX_STATUS:
            status += payload
    return stdout, stderr, bytes(status)
