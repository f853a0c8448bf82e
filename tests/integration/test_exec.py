"""``pods/exec`` on the sandbox's pods: kubectl, the official Python client, and strongroom's exec client.

One pod runs for the module (``sh -c 'sleep 3600'``, waited to Running); each
test runs commands in it over the websocket remote-command protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import stream
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, eventually, unique

from strongroom.kube import KubeClient, KubeError, KubeNotFound
from strongroom.kube.exec import ExecResult, ExecTimeout, exec_command

pytestmark = pytest.mark.integration

OUT_ERR_EXIT3 = ["sh", "-c", "echo out; echo err >&2; exit 3"]


@pytest.fixture(scope="module")
def running_pod(kube: Kube) -> Iterator[tuple[str, str]]:
    """(namespace, pod) of a pod whose one container sleeps, once it is Running."""
    namespace, name = unique("exec"), "sleeper"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    kube.core.create_namespaced_pod(namespace, body)
    eventually(lambda: kube.core.read_namespaced_pod(name, namespace).status.phase == "Running", timeout=30)
    try:
        yield namespace, name
    finally:
        kube.core.delete_namespace(namespace)


def test_kubectl_exec_gives_outputs_and_the_exit_code(sandbox: Sandbox, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    proc = sandbox.kubectl("exec", "-n", namespace, name, "--", *OUT_ERR_EXIT3, check=False)
    assert proc.returncode == 3
    assert proc.stdout == "out\n"
    assert "err\n" in proc.stderr
    assert "command terminated with exit code 3" in proc.stderr


def test_kubectl_exec_passes_stdin_through(sandbox: Sandbox, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    proc = sandbox.kubectl("exec", "-i", "-n", namespace, name, "--", "cat", input="line one\nline two\n")
    assert proc.stdout == "line one\nline two\n"


def test_kubectl_exec_reports_errors_as_kubectl_does(sandbox: Sandbox, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    missing = sandbox.kubectl("exec", "-n", namespace, "nope", "--", "true", check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in missing.stderr
    bad = sandbox.kubectl("exec", "-n", namespace, name, "-c", "other", "--", "true", check=False)
    assert bad.returncode == 1
    assert f"Error from server (BadRequest): container other is not valid for pod {name}" in bad.stderr
    not_found = sandbox.kubectl("exec", "-n", namespace, name, "--", "no-such-command", check=False)
    assert not_found.returncode != 0
    assert "no-such-command" in not_found.stderr


def test_the_official_client_streams_exec(kube: Kube, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    response = stream(
        kube.core.connect_get_namespaced_pod_exec,
        name,
        namespace,
        command=OUT_ERR_EXIT3,
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    try:
        response.run_forever(timeout=20)
        assert response.read_stdout() == "out\n"
        assert response.read_stderr() == "err\n"
        assert response.returncode == 3
    finally:
        # After the server's close, websocket-client's close() returns early and leaves the socket open.
        response.close()
        response.sock.shutdown()


async def _exec(sandbox: Sandbox, namespace: str, name: str, command: list[str], **kwargs: Any) -> ExecResult:
    try:
        async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube_client:
            return await exec_command(
                kube_client, namespace, name, kwargs.pop("container", None), command, **kwargs
            )
    finally:
        # aiohttp's graceful shutdown: a closed TLS connection finishes its shutdown in the
        # background, and asyncio.run would close the loop under it (a ResourceWarning).
        await asyncio.sleep(0.25)


def test_exec_command_runs_a_command(sandbox: Sandbox, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    assert asyncio.run(_exec(sandbox, namespace, name, OUT_ERR_EXIT3)) == ExecResult(3, b"out\n", b"err\n")
    echoed = asyncio.run(_exec(sandbox, namespace, name, ["cat"], stdin=b"to stdin and back"))
    assert echoed == ExecResult(0, b"to stdin and back", b"")


def test_exec_command_times_out(sandbox: Sandbox, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    with pytest.raises(ExecTimeout, match=r"did not finish within 0\.5s"):
        asyncio.run(_exec(sandbox, namespace, name, ["sleep", "30"], timeout=0.5))


def test_exec_command_errors(sandbox: Sandbox, running_pod: tuple[str, str]) -> None:
    namespace, name = running_pod
    with pytest.raises(KubeNotFound, match='pods "nope" not found'):
        asyncio.run(_exec(sandbox, namespace, "nope", ["true"]))

    with pytest.raises(KubeError, match=f"container other is not valid for pod {name}") as caught:
        asyncio.run(_exec(sandbox, namespace, name, ["true"], container="other"))
    assert caught.value.status == 400
