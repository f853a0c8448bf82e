"""The sandbox's ``pods/exec`` server: framing, statuses, options, and whole sessions over a real websocket.

Sessions run against an aiohttp test server with a runtime that starts local
processes, so the protocol is exercised end to end without a kubelet; the
integration suite (tests/integration/test_exec.py) drives the real kubelet.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.runasync import run_async

from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import Engine, Target
from strongroom.sandbox.remotecommand import (
    CLOSE_CHANNEL,
    ERROR_CHANNEL,
    PROTOCOLS,
    RESIZE_CHANNEL,
    STDERR_CHANNEL,
    STDIN_CHANNEL,
    STDOUT_CHANNEL,
    decode_frame,
    encode_frame,
    exit_status,
    parse_exec_options,
    serve_exec,
    start_failure_status,
    success_status,
)
from strongroom.sandbox.runtime import PodRuntime

V5, V4, V4_BASE64, V1, V1_BASE64 = (p.name for p in PROTOCOLS)
OUT_ERR_EXIT3 = ["sh", "-c", "echo out; echo err >&2; exit 3"]


# ------------------------------------------------------------------ doubles


class _Registry:
    def lookup(self, group: str, version: str, resource: str) -> str | None:
        return "pods" if (group, version, resource) == ("", "v1", "pods") else None


class FakeEngine:
    """Pods by (namespace, name), as much of Engine as the exec handler reads."""

    registry = _Registry()

    def __init__(self, pods: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.pods = pods

    async def get(self, t: Target) -> dict[str, Any]:
        pod = self.pods.get((t.namespace or "", t.name or ""))
        if pod is None:
            raise apierrors.not_found("", "pods", t.name or "")
        return pod


class LocalRuntime:
    """Runs the command on this machine; `fail` makes the next exec raise instead."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        self.fail: BaseException | None = None
        self.calls: list[tuple[str, str, str | None, list[str], bool]] = []

    async def exec(
        self, namespace: str, pod: str, container: str | None, command: list[str], *, tty: bool
    ) -> asyncio.subprocess.Process:
        self.calls.append((namespace, pod, container, command, tty))
        if self.fail is not None:
            raise self.fail
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if tty else asyncio.subprocess.PIPE,
        )
        self.processes.append(process)
        return process


def pod(*containers: str, node: str | None = "sandbox-node-1") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": "web", "namespace": "ns"}, "spec": spec}


def exec_app(engine: FakeEngine, runtime: LocalRuntime | None) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await serve_exec(
                request,
                cast(Engine, engine),
                cast(PodRuntime | None, runtime),
                request.match_info["ns"],
                request.match_info["pod"],
            )
        except apierrors.ApiError as exc:  # what ApiServer's error middleware does
            return web.json_response(exc.status(), status=exc.code)

    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{pod}/exec", handler)
    return app


@asynccontextmanager
async def serving(
    runtime: LocalRuntime | None = None, pods: dict[tuple[str, str], dict[str, Any]] | None = None
) -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    engine = FakeEngine(pods if pods is not None else {("ns", "web"): pod("app")})
    server = TestServer(exec_app(engine, runtime if runtime is not None else LocalRuntime()))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield server, session
    finally:
        await server.close()


def query(
    command: list[str], *, stdin: bool = False, tty: bool = False, **extra: str
) -> list[tuple[str, str]]:
    items = [("command", arg) for arg in command]
    items += [
        ("stdin", str(stdin).lower()),
        ("stdout", "true"),
        ("stderr", "true"),
        ("tty", str(tty).lower()),
    ]
    return items + list(extra.items())


def url(server: TestServer, pod_name: str = "web") -> str:
    return str(server.make_url(f"/api/v1/namespaces/ns/pods/{pod_name}/exec"))


async def collect(ws: aiohttp.ClientWebSocketResponse, protocol: str = V5) -> list[tuple[int, bytes]]:
    """Every frame until the server closes, decoded with the negotiated protocol."""
    spec = next(p for p in PROTOCOLS if p.name == protocol)
    frames = []
    async for message in ws:
        if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            frames.append(decode_frame(spec, message.data))
    return frames


def joined(frames: list[tuple[int, bytes]], channel: int) -> bytes:
    return b"".join(payload for ch, payload in frames if ch == channel)


# ------------------------------------------------------------------ framing and statuses


def test_binary_frames_are_a_channel_byte_and_the_payload() -> None:
    v5 = PROTOCOLS[0]
    assert encode_frame(v5, STDOUT_CHANNEL, b"hi\n") == b"\x01hi\n"
    assert encode_frame(v5, ERROR_CHANNEL, b"") == b"\x03"
    assert decode_frame(v5, b"\x00abc") == (STDIN_CHANNEL, b"abc")
    assert decode_frame(v5, bytes([CLOSE_CHANNEL, 0])) == (CLOSE_CHANNEL, b"\x00")
    with pytest.raises(ValueError, match="no channel"):
        decode_frame(v5, b"")


def test_base64_frames_are_a_channel_digit_and_base64_text() -> None:
    spec = next(p for p in PROTOCOLS if p.name == V4_BASE64)
    assert encode_frame(spec, STDOUT_CHANNEL, b"foo\n") == "1Zm9vCg=="
    assert decode_frame(spec, "0Zm9vCg==") == (STDIN_CHANNEL, b"foo\n")
    with pytest.raises(ValueError, match="not base64"):
        decode_frame(spec, "0!!!")


def test_statuses_have_the_kubelets_wording() -> None:
    assert success_status() == {"metadata": {}, "status": "Success"}
    assert exit_status(["sh", "-c", "exit 3"], 3) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], "
        "exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    failed = start_failure_status(["nosuchcmd"], FileNotFoundError(2, "No such file or directory"))
    assert failed["status"] == "Failure"
    assert failed["reason"] == "InternalError"
    assert failed["code"] == 500
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in failed["message"]
    assert failed["message"].startswith("Internal error occurred: error executing command in container:")


def test_options_read_booleans_as_kube_apiserver_converts_them() -> None:
    options = parse_exec_options("command=sh&command=-c&command=echo%20hi&stdin=1&stdout=true&stderr=false")
    assert options.command == ("sh", "-c", "echo hi")
    assert (options.stdin, options.stdout, options.stderr, options.tty) == (True, True, False, False)
    assert options.container is None
    assert parse_exec_options("command=ls&container=app&stdout=TRUE").container == "app"


def test_a_terminal_has_no_separate_stderr() -> None:
    options = parse_exec_options("command=ls&stdout=true&stderr=true&tty=true")
    assert options.tty and options.stdout and not options.stderr


@pytest.mark.parametrize(
    ("query_string", "message"),
    [
        ("stdout=true", "you must specify at least one command for the container"),
        ("command=ls&stdout=false&stderr=0", "you must specify at least 1 of stdin, stdout, stderr"),
    ],
)
def test_options_without_a_command_or_a_stream_are_a_bad_request(query_string: str, message: str) -> None:
    with pytest.raises(apierrors.ApiError) as caught:
        parse_exec_options(query_string)
    assert (caught.value.code, caught.value.message) == (400, message)


# ------------------------------------------------------------------ sessions


@run_async
async def test_v5_session_streams_outputs_and_reports_the_exit_code() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(OUT_ERR_EXIT3), protocols=[V5, V4]) as ws,
    ):
        assert ws.protocol == V5
        frames = await collect(ws)
    assert frames[0] == (STDOUT_CHANNEL, b"")  # the kubelet's "connection established" message
    assert joined(frames, STDOUT_CHANNEL) == b"out\n"
    assert joined(frames, STDERR_CHANNEL) == b"err\n"
    assert json.loads(joined(frames, ERROR_CHANNEL)) == exit_status(OUT_ERR_EXIT3, 3)
    assert frames[-1][0] == ERROR_CHANNEL  # the status comes last, then the close


@run_async
async def test_success_is_a_success_status() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(["true"]), protocols=[V5]) as ws,
    ):
        frames = await collect(ws)
    assert json.loads(joined(frames, ERROR_CHANNEL)) == {"metadata": {}, "status": "Success"}


@run_async
async def test_v5_close_of_stdin_ends_a_command_that_reads_to_the_end() -> None:
    runtime = LocalRuntime()
    async with (
        serving(runtime) as (server, session),
        session.ws_connect(url(server), params=query(["cat"], stdin=True), protocols=[V5]) as ws,
    ):
        await ws.send_bytes(b"\x00hello ")
        await ws.send_bytes(b"\x00world\n")
        await ws.send_bytes(bytes([RESIZE_CHANNEL]) + b'{"Width":80,"Height":24}')  # accepted, ignored
        await ws.send_bytes(bytes([CLOSE_CHANNEL, STDIN_CHANNEL]))
        frames = await collect(ws)
    assert joined(frames, STDOUT_CHANNEL) == b"hello world\n"
    assert json.loads(joined(frames, ERROR_CHANNEL))["status"] == "Success"
    assert runtime.calls == [("ns", "web", None, ["cat"], False)]


@run_async
async def test_output_is_sent_as_it_comes_not_at_the_end() -> None:
    # The command prints, then waits for input: the output must arrive while it waits.
    command = ["sh", "-c", "echo ready; read line; echo got $line"]
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(command, stdin=True), protocols=[V5]) as ws,
    ):
        seen = b""
        while b"ready\n" not in seen:
            message = await asyncio.wait_for(ws.receive(), timeout=10)
            channel, payload = decode_frame(PROTOCOLS[0], message.data)
            if channel == STDOUT_CHANNEL:
                seen += payload
        await ws.send_bytes(b"\x00go\n")
        frames = await collect(ws)
    assert joined(frames, STDOUT_CHANNEL) == b"got go\n"


@run_async
async def test_v4_is_served_to_a_client_that_offers_only_v4() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(OUT_ERR_EXIT3), protocols=[V4]) as ws,
    ):
        assert ws.protocol == V4
        frames = await collect(ws, V4)
    assert joined(frames, STDOUT_CHANNEL) == b"out\n"
    status = json.loads(joined(frames, ERROR_CHANNEL))
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


@run_async
async def test_v4_has_no_close_channel() -> None:
    # In v4 a 255 message is not a close: stdin stays open, so head ends on its byte count instead.
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(["head", "-c", "4"], stdin=True), protocols=[V4]) as ws,
    ):
        await ws.send_bytes(bytes([CLOSE_CHANNEL, STDIN_CHANNEL]))
        await ws.send_bytes(b"\x00abcdef")
        frames = await collect(ws, V4)
    assert joined(frames, STDOUT_CHANNEL) == b"abcd"


@run_async
async def test_base64_protocol_sends_text_frames() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(OUT_ERR_EXIT3), protocols=[V4_BASE64]) as ws,
    ):
        messages = [m async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
    by_channel: dict[str, bytes] = {}
    for m in messages:
        by_channel[m.data[0]] = by_channel.get(m.data[0], b"") + base64.b64decode(m.data[1:])
    assert by_channel["1"] == b"out\n"
    assert by_channel["2"] == b"err\n"
    assert json.loads(by_channel["3"])["reason"] == "NonZeroExitCode"


@run_async
async def test_unversioned_protocol_reports_a_failure_as_text() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(OUT_ERR_EXIT3), protocols=[V1]) as ws,
    ):
        frames = await collect(ws, V1)
    assert joined(frames, ERROR_CHANNEL) == (
        b"command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; "
        b"exit 3], exit code 3"
    )


@run_async
async def test_tty_merges_stderr_into_stdout() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(OUT_ERR_EXIT3, tty=True), protocols=[V5]) as ws,
    ):
        frames = await collect(ws)
    assert joined(frames, STDOUT_CHANNEL) == b"out\nerr\n"
    assert joined(frames, STDERR_CHANNEL) == b""


@run_async
async def test_a_command_that_cannot_start_is_reported_on_the_error_channel() -> None:
    async with (
        serving() as (server, session),
        session.ws_connect(url(server), params=query(["/nonexistent/cmd"]), protocols=[V5]) as ws,
    ):
        frames = await collect(ws)
    status = json.loads(joined(frames, ERROR_CHANNEL))
    assert status["reason"] == "InternalError"
    assert 'exec: "/nonexistent/cmd": executable file not found in $PATH' in status["message"]


@run_async
async def test_the_command_is_killed_when_the_client_goes_away() -> None:
    runtime = LocalRuntime()
    async with serving(runtime) as (server, session):
        ws = await session.ws_connect(url(server), params=query(["sleep", "60"]), protocols=[V5])
        await ws.receive()  # the session is up
        await ws.close()
        process = runtime.processes[0]
        code = await asyncio.wait_for(process.wait(), timeout=10)
    assert code < 0  # ended by a signal, not by sleeping out


# ------------------------------------------------------------------ errors before the upgrade


async def _plain(
    session: aiohttp.ClientSession, target: str, params: list[tuple[str, str]], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with session.get(target, params=params, headers=headers) as response:
        return response.status, await response.json()


WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
    "Sec-WebSocket-Protocol": V5,
}


@pytest.mark.parametrize(
    ("pod_name", "params", "headers", "code", "message"),
    [
        ("nope", query(["ls"]), WS_HEADERS, 404, 'pods "nope" not found'),
        ("web", query(["ls"], container="db"), WS_HEADERS, 400, "container db is not valid for pod web"),
        ("web", query(["ls"]), {}, 400, "Upgrade request required"),
        (
            "web",
            query(["ls"]),
            {"Upgrade": "SPDY/3.1", "Connection": "Upgrade"},
            400,
            "over websockets only",
        ),
        (
            "web",
            query(["ls"]),
            {**WS_HEADERS, "Sec-WebSocket-Protocol": "v3.channel.k8s.io"},
            400,
            "requested protocol(s) are not supported: [v3.channel.k8s.io]",
        ),
        (
            "two",
            query(["ls"]),
            WS_HEADERS,
            400,
            "a container name must be specified for pod two, choose one of: [a b]",
        ),
        ("unbound", query(["ls"]), WS_HEADERS, 400, "pod unbound does not have a host assigned"),
    ],
)
@run_async
async def test_errors_before_the_upgrade_are_plain_statuses(
    pod_name: str, params: list[tuple[str, str]], headers: dict[str, str], code: int, message: str
) -> None:
    pods = {("ns", "web"): pod("app"), ("ns", "two"): pod("a", "b"), ("ns", "unbound"): pod("app", node=None)}
    runtime = LocalRuntime()
    async with serving(runtime, pods) as (server, session):
        status, body = await _plain(session, url(server, pod_name), params, headers)
    assert status == code
    assert body["kind"] == "Status"
    assert body["code"] == code
    assert message in body["message"]
    assert runtime.calls == []  # nothing ran


@run_async
async def test_runtime_errors_answer_before_the_upgrade() -> None:
    runtime = LocalRuntime()
    runtime.fail = apierrors.bad_request(
        "cannot exec into a container in a completed pod; current phase is Succeeded"
    )
    async with serving(runtime) as (server, session):
        status, body = await _plain(session, url(server), query(["ls"]), WS_HEADERS)
    assert status == 400
    assert body["message"] == "cannot exec into a container in a completed pod; current phase is Succeeded"


@run_async
async def test_a_sandbox_without_nodes_answers_service_unavailable() -> None:
    engine = FakeEngine({("ns", "web"): pod("app")})
    server = TestServer(exec_app(engine, None))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            status, body = await _plain(session, url(server), query(["ls"]), WS_HEADERS)
    finally:
        await server.close()
    assert status == 503
    assert "pods/exec is not available" in body["message"]
