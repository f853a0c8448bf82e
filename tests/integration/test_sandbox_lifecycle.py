"""`strongroom sandbox up|down|status` as a user runs them: the processes, the files, restarts.

The first test runs every command as a process of its own, as a shell does; the others run
them in the test process (an interpreter takes over a second to start), where `up --detach`
still starts the sandbox as a process of its own.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from tests.conftest import kubectl_binary
from tests.integration.etcdcli import ok as in_process_ok
from tests.integration.etcdcli import strongroom as in_process

from strongroom.sandbox import runner
from strongroom.sandbox.etcdproc import pid_alive

pytestmark = pytest.mark.integration


def strongroom(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "strongroom", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"strongroom {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )


def test_up_status_down_and_restart_keeps_objects(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    out = strongroom("sandbox", "up", "--dir", str(directory), "--detach", "--nodes", "3").stdout
    assert "sandbox ready at https://127.0.0.1:" in out
    kubeconfig = directory / "kubeconfig"
    try:
        status = json.loads(strongroom("sandbox", "status", "--dir", str(directory), "-o", "json").stdout)
        assert status["running"] is True
        assert status["server"].startswith("https://127.0.0.1:")
        assert status["kubeconfig"] == str(kubeconfig)
        assert len(status["etcdEndpoints"]) == 1
        assert status["etcdEndpoints"][0].startswith("http://127.0.0.1:")
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        nodes = json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
        assert len(nodes) == 3

        created = kubectl(
            kubeconfig,
            "create",
            "-f",
            "-",
            stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: survivor\n  namespace: default\ndata:\n  k: v\n",
        )
        assert created.returncode == 0, created.stderr
        before = json.loads(kubectl(kubeconfig, "get", "configmap", "survivor", "-o", "json").stdout)

        state = runner.read_state(directory)
        assert state is not None
        assert "stopped" in strongroom("sandbox", "down", "--dir", str(directory)).stdout
        assert not pid_alive(state.pid)
        assert not pid_alive(state.etcdPid)
        stopped = strongroom("sandbox", "status", "--dir", str(directory), "-o", "json", check=False)
        assert stopped.returncode != 0
        assert json.loads(stopped.stdout)["running"] is False

        strongroom("sandbox", "up", "--dir", str(directory), "--detach", "--nodes", "3")
        # The same kubeconfig (same CA and credentials) still works, and the object is unchanged.
        after = json.loads(kubectl(kubeconfig, "get", "configmap", "survivor", "-o", "json").stdout)
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["data"] == {"k": "v"}
        assert len(json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]) == 3
    finally:
        strongroom("sandbox", "down", "--dir", str(directory), check=False)


def test_up_twice_is_harmless_and_down_when_stopped_says_so(tmp_path: Path) -> None:
    # The commands run in this process (the test above runs them as a user does, each a process
    # of its own); `up --detach` starts the sandbox as a process of its own all the same.
    directory = tmp_path / "twice"
    in_process_ok("sandbox", "up", "--dir", str(directory), "--detach")
    try:
        again = in_process_ok("sandbox", "up", "--dir", str(directory), "--detach")
        assert "already running" in again.stdout
    finally:
        in_process_ok("sandbox", "down", "--dir", str(directory))
    assert "not running" in in_process_ok("sandbox", "down", "--dir", str(directory)).stdout


def test_requests_without_valid_credentials_get_401(tmp_path: Path) -> None:
    directory = tmp_path / "auth"
    state = runner.start_detached(directory, port=None, nodes=1, insecure=False)
    try:
        context = ssl.create_default_context(cafile=str(directory / "pki" / "ca.crt"))
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            request = urllib.request.Request(f"{state.server}/api/v1/namespaces", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, context=context, timeout=10)
            assert caught.value.code == 401
            body = json.loads(caught.value.read())
            assert body["kind"] == "Status"
            assert body["reason"] == "Unauthorized"
        token = (directory / "pki" / "token").read_text().strip()
        request = urllib.request.Request(
            f"{state.server}/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            assert json.loads(response.read())["kind"] == "NamespaceList"
        # The kubeconfig also carries a client certificate that the server accepts on its own.
        config = yaml.safe_load((directory / "kubeconfig").read_text())
        user = config["users"][0]["user"]
        assert user["client-certificate-data"]
        del user["token"]
        cert_only = tmp_path / "cert-only.kubeconfig"
        cert_only.write_text(yaml.safe_dump(config))
        listed = kubectl(cert_only, "get", "namespaces", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        assert "namespace/default" in listed.stdout.split()
    finally:
        runner.stop(directory)


def test_insecure_mode_serves_plain_http_without_authentication(tmp_path: Path) -> None:
    directory = tmp_path / "plain"
    state = runner.start_detached(directory, port=None, nodes=1, insecure=True)
    try:
        assert state.server.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{state.server}/api/v1/namespaces/default", timeout=10) as response:
            assert json.loads(response.read())["metadata"]["name"] == "default"
        listed = kubectl(directory / "kubeconfig", "get", "namespace", "default", "-o", "name")
        assert listed.stdout.strip() == "namespace/default"
    finally:
        runner.stop(directory)


def test_bad_arguments_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    # In this process: refused before anything starts, so no need to pay a new interpreter's start-up.
    proc = in_process("sandbox", "up", "--dir", str(tmp_path / "x"), "--nodes", "-1")
    assert proc.code == 2
    assert "--nodes must be between 0 and 1000" in proc.stderr
    missing = in_process("sandbox", "status", "--dir", str(tmp_path / "never-started"), "-o", "json")
    assert missing.code != 0
    assert json.loads(missing.stdout)["running"] is False


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    first = runner.start_detached(tmp_path / "a", port=None, nodes=0, insecure=False)
    try:
        # `up --detach` in this process: the sandbox it starts is a process of its own all the same.
        proc = in_process(
            "sandbox", "up", "--dir", str(tmp_path / "b"), "--port", str(first.port), "--detach"
        )
        assert proc.code != 0
        assert f"port {first.port} on 127.0.0.1 is in use" in proc.stderr
    finally:
        runner.stop(tmp_path / "a")
        runner.stop(tmp_path / "b")


def test_large_contents_list_whole_and_survive_a_restart(tmp_path: Path) -> None:
    """More than gRPC's default 4 MiB in one list: unpaginated lists and the restart index both work."""
    directory = tmp_path / "big"
    runner.start_detached(directory, port=None, nodes=0, insecure=False)
    kubeconfig = directory / "kubeconfig"
    try:
        payload = "x" * (200 * 1024)
        # libyaml's dumper: the pure-Python one takes ~5 s for these 6 MB.
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        manifests = "\n---\n".join(
            yaml.dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"big-{i}"},
                    "data": {"blob": payload},
                },
                Dumper=dumper,
            )
            for i in range(30)
        )
        created = kubectl(kubeconfig, "create", "-n", "default", "-f", "-", stdin=manifests)
        assert created.returncode == 0, created.stderr
        runner.stop(directory)
        runner.start_detached(directory, port=None, nodes=0, insecure=False)
        listed = kubectl(kubeconfig, "get", "configmaps", "-n", "default", "--chunk-size=0", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        names = {item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]}
        assert {f"big-{i}" for i in range(30)} <= names
    finally:
        runner.stop(directory)
