"""The exec client: message framing, reading the exit status, and whole runs against a local exec server.

The server is the sandbox's own ``pods/exec`` handler (a full protocol peer)
behind an aiohttp test server that checks the bearer token, with a runtime that
starts local processes; a few hand-written handlers give answers a healthy
server does not (no status, only v4).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes_asyncio.client import ApiClient, Configuration
from tests.runasync import run_async
from tests.unit.sandbox.test_remotecommand import FakeEngine, LocalRuntime, pod

from strongroom.kube import KubeClient, KubeError, KubeForbidden, KubeNotFound
from strongroom.kube.exec import (
    CLOSE_CHANNEL,
    ExecFailed,
    ExecResult,
    ExecTimeout,
    close_message,
    decode_message,
    encode_message,
    exec_command,
    exec_path,
    exec_query,
    exit_code_from_status,
)
from strongroom.sandbox import apierrors
from strongroom.sandbox.engine import Engine
from strongroom.sandbox.remotecommand import serve_exec
from strongroom.sandbox.runtime import PodRuntime

TOKEN = "exec-test-token-0123456789"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ------------------------------------------------------------------ framing and statuses


def test_messages_are_a_channel_byte_and_the_payload() -> None:
    assert encode_message(0, b"input") == b"\x00input"
    assert decode_message(b"\x02oops") == (2, b"oops")
    assert close_message(0) == bytes([CLOSE_CHANNEL, 0])
    with pytest.raises(ValueError, match="no channel"):
        decode_message(b"")
    with pytest.raises(ValueError, match="one byte"):
        encode_message(256, b"")


def test_the_query_names_each_argument_and_both_outputs() -> None:
    assert exec_query(["sh", "-c", "echo hi"], "app", stdin=True) == [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "echo hi"),
        ("container", "app"),
        ("stdin", "true"),
        ("stdout", "true"),
        ("stderr", "true"),
        ("tty", "false"),
    ]
    assert ("container", "") not in exec_query(["ls"], None, stdin=False)
    assert exec_path("my ns", "web/0") == "/api/v1/namespaces/my%20ns/pods/web%2F0/exec"


def test_exit_codes_are_read_from_the_status() -> None:
    assert exit_code_from_status({"metadata": {}, "status": "Success"}) == 0
    failure = {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [false], exit code 1",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "Other", "message": "x"}, {"reason": "ExitCode", "message": "42"}]},
    }
    assert exit_code_from_status(failure) == 42


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            {
                "status": "Failure",
                "reason": "InternalError",
                "message": "Internal error occurred: no such file",
            },
            "Internal error occurred: no such file",
        ),
        ({"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": []}}, "gives no exit code"),
        (
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "x"}]},
            },
            "invalid exit code 'x'",
        ),
        ({"status": "Pending"}, "neither Success nor Failure"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_statuses_without_an_exit_code_are_exec_failures(status: Any, message: str) -> None:
    with pytest.raises(ExecFailed, match=message.replace("(", r"\(")):
        exit_code_from_status(status)


# ------------------------------------------------------------------ runs against a server


def exec_handler(runtime: LocalRuntime, pods: dict[tuple[str, str], dict[str, Any]] | None = None) -> Handler:
    engine = FakeEngine(
        pods if pods is not None else {("ns", "web"): pod("app"), ("ns", "two"): pod("a", "b")}
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_exec(
            request,
            cast(Engine, engine),
            cast(PodRuntime, runtime),
            request.match_info["ns"],
            request.match_info["pod"],
        )

    return handler


@asynccontextmanager
async def cluster(exec_route: Handler, *, token: str = TOKEN) -> AsyncIterator[KubeClient]:
    """A KubeClient whose API server answers exec with `handler`, behind bearer-token authentication."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise apierrors.unauthorized()
        return await handler(request)

    @web.middleware
    async def statuses(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except apierrors.ApiError as exc:
            return web.json_response(exc.status(), status=exc.code)

    app = web.Application(middlewares=[statuses, authenticate])
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{pod}/exec", exec_route)
    server = TestServer(app)
    await server.start_server()
    configuration = Configuration(host=str(server.make_url("")).rstrip("/"))
    configuration.api_key["BearerToken"] = f"Bearer {token}"
    client = KubeClient(ApiClient(configuration))
    try:
        yield client
    finally:
        await client.close()
        await server.close()


@run_async
async def test_a_command_gives_its_outputs_and_exit_code() -> None:
    runtime = LocalRuntime()
    async with cluster(exec_handler(runtime)) as client:
        result = await exec_command(
            client, "ns", "web", "app", ["sh", "-c", "echo out; echo err >&2; exit 3"]
        )
    assert result == ExecResult(3, b"out\n", b"err\n")
    assert runtime.calls == [("ns", "web", "app", ["sh", "-c", "echo out; echo err >&2; exit 3"], False)]


@run_async
async def test_stdin_is_sent_and_closed() -> None:
    data = bytes(range(256)) * 1000  # several messages' worth, every byte value
    async with cluster(exec_handler(LocalRuntime())) as client:
        result = await exec_command(client, "ns", "web", None, ["cat"], stdin=data)
    assert result.exit_code == 0
    assert result.stdout == data


@run_async
async def test_v4_is_used_when_the_server_offers_nothing_newer(caplog: pytest.LogCaptureFixture) -> None:
    inner = exec_handler(LocalRuntime())
    protocols: list[str] = []

    async def only_v4(request: web.Request) -> web.StreamResponse:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        protocols.append(offered)
        kept = ", ".join(p.strip() for p in offered.split(",") if p.strip() != "v5.channel.k8s.io")
        headers = request.headers.copy()
        headers["Sec-WebSocket-Protocol"] = kept
        return await inner(request.clone(headers=headers))

    caplog.set_level(logging.DEBUG, logger="strongroom.kube.exec")
    async with cluster(only_v4) as client:
        # v4 cannot close stdin, so the command stops on its own after four bytes.
        result = await exec_command(client, "ns", "web", None, ["head", "-c", "4"], stdin=b"abcdef")
    assert result == ExecResult(0, b"abcd", b"")
    assert protocols == ["v5.channel.k8s.io,v4.channel.k8s.io"]
    assert "exec over v4.channel.k8s.io: stdin sent but cannot be closed" in caplog.text


@run_async
async def test_a_timeout_abandons_the_command() -> None:
    runtime = LocalRuntime()
    async with cluster(exec_handler(runtime)) as client:
        with pytest.raises(ExecTimeout, match=r"did not finish within 0\.3s") as caught:
            await exec_command(client, "ns", "web", None, ["sleep", "60"], timeout=0.3)
        # The stream closed, so the server ended the command.
        code = await asyncio.wait_for(runtime.processes[0].wait(), timeout=10)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.reason == "Timeout"
    assert code < 0


@run_async
async def test_outputs_are_kept_up_to_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    command = ["sh", "-c", "head -c 5000 /dev/zero; head -c 10 /dev/zero >&2"]
    async with cluster(exec_handler(LocalRuntime())) as client:
        with caplog.at_level(logging.WARNING, logger="strongroom.kube.exec"):
            result = await exec_command(client, "ns", "web", None, command, output_limit=100)
    assert (len(result.stdout), result.stdout_truncated) == (100, True)
    assert (result.stderr, result.stderr_truncated) == (b"\0" * 10, False)
    assert "printed more than 100 bytes on stdout; kept the first 100 bytes" in caplog.text


@run_async
async def test_a_command_that_cannot_start_is_an_exec_failure() -> None:
    async with cluster(exec_handler(LocalRuntime())) as client:
        with pytest.raises(ExecFailed, match="executable file not found") as caught:
            await exec_command(client, "ns", "web", None, ["/nonexistent/cmd"])
    assert caught.value.reason == "InternalError"


@pytest.mark.parametrize(
    ("pod_name", "container", "error", "status", "message"),
    [
        ("nope", None, KubeNotFound, 404, 'pods "nope" not found'),
        ("web", "db", KubeError, 400, "container db is not valid for pod web"),
        ("two", None, KubeError, 400, "a container name must be specified for pod two"),
    ],
)
@run_async
async def test_errors_before_the_upgrade_are_kube_errors(
    pod_name: str, container: str | None, error: type[KubeError], status: int, message: str
) -> None:
    runtime = LocalRuntime()
    async with cluster(exec_handler(runtime)) as client:
        with pytest.raises(error) as caught:
            await exec_command(client, "ns", pod_name, container, ["ls"])
    assert caught.value.status == status
    assert message in caught.value.message
    assert runtime.calls == []


@run_async
async def test_refused_credentials_are_forbidden_and_not_echoed() -> None:
    async with cluster(exec_handler(LocalRuntime()), token="wrong-token-abcdefgh") as client:
        with pytest.raises(KubeForbidden) as caught:
            await exec_command(client, "ns", "web", None, ["ls"])
    assert caught.value.status == 401
    assert "wrong-token" not in str(caught.value)


@run_async
async def test_a_stream_that_closes_without_a_status_is_an_exec_failure() -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=["v5.channel.k8s.io"])
        await ws.prepare(request)
        await ws.send_bytes(b"\x01partial")
        await ws.close()
        return ws

    async with cluster(hang_up) as client:
        with pytest.raises(ExecFailed, match="closed before the command's exit status arrived"):
            await exec_command(client, "ns", "web", None, ["ls"])


@pytest.mark.parametrize(
    ("command", "timeout", "message"),
    [([], None, "needs a command"), ([""], None, "needs a command"), (["ls"], 0.0, "must be positive")],
)
@run_async
async def test_bad_arguments_are_refused_before_any_request(
    command: list[str], timeout: float | None, message: str
) -> None:
    configuration = Configuration(host="https://127.0.0.1:1")
    client = KubeClient(ApiClient(configuration))
    try:
        with pytest.raises(ValueError, match=message):
            await exec_command(client, "ns", "web", None, command, timeout=timeout)
    finally:
        await client.close()
