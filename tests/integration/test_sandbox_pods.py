"""Pods really run in the sandbox: scheduling, kubelet status, volumes, logs, deletion, tokens."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox, kubectl_binary
from tests.integration.etcdcli import ok
from tests.integration.sandboxapi import eventually

from strongroom.sandbox import runner
from strongroom.sandbox.runtime import node_root, volume_dir

pytestmark = pytest.mark.integration

JsonObject = dict[str, Any]


def apply(sandbox: Sandbox, namespace: str, *objects: JsonObject) -> None:
    sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))


def pod(name: str, *containers: JsonObject, **spec: Any) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": list(containers), **spec},
    }


def get_pod(sandbox: Sandbox, namespace: str, name: str) -> JsonObject:
    found: JsonObject = sandbox.kubectl_json("get", "pod", name, "-n", namespace)
    return found


def wait_pod(sandbox: Sandbox, namespace: str, name: str, phase: str, timeout: float = 20) -> JsonObject:
    def check() -> JsonObject | None:
        current = get_pod(sandbox, namespace, name)
        return current if current["status"].get("phase") == phase else None

    return eventually(check, timeout=timeout, interval=0.1)


def condition(obj: JsonObject, kind: str) -> JsonObject:
    return next(c for c in obj["status"].get("conditions") or [] if c["type"] == kind)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone as far as the container goes.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_init_container_runs_first_then_the_pod_is_running_ready_with_logs(
    sandbox: Sandbox, namespace: str
) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    apply(
        sandbox,
        namespace,
        pod(
            "hello",
            {
                "name": "main",
                "image": "busybox",
                "command": [
                    "sh",
                    "-c",
                    "cat /work/msg; echo ns=$(cat $(SA)/namespace) host=$HOSTNAME; sleep 3600",
                ],
                "env": [{"name": "SA", "value": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "volumeMounts": mount,
            },
            initContainers=[
                {
                    "name": "init",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo written-by-init > /work/msg"],
                    "volumeMounts": mount,
                }
            ],
            volumes=[{"name": "work", "emptyDir": {}}],
        ),
    )
    sandbox.kubectl("wait", "-n", namespace, "pod/hello", "--for=condition=Ready", "--timeout=20s")
    running = get_pod(sandbox, namespace, "hello")
    assert running["status"]["phase"] == "Running"
    assert running["spec"]["nodeName"] in ("sandbox-node-1", "sandbox-node-2")
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert condition(running, kind)["status"] == "True"
    init = running["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0
    assert init["state"]["terminated"]["reason"] == "Completed"
    main = running["status"]["containerStatuses"][0]
    assert main["ready"] is True and main["started"] is True and main["restartCount"] == 0
    assert "running" in main["state"]
    assert main["containerID"].startswith("sandbox://")
    assert running["status"]["podIP"] == "127.0.0.1"

    logs = eventually(
        lambda: sandbox.kubectl("logs", "-n", namespace, "hello", "-c", "main").stdout, timeout=5
    )
    assert logs.splitlines() == ["written-by-init", f"ns={namespace} host=hello"]
    # The pod without -c defaults to its only container (the init container does not count).
    assert sandbox.kubectl("logs", "-n", namespace, "hello").stdout == logs
    stamped = sandbox.kubectl("logs", "-n", namespace, "hello", "--timestamps", "--tail=1").stdout
    assert stamped.endswith(f" ns={namespace} host=hello\n")
    assert stamped[:4].isdigit() and "T" in stamped.split(" ")[0]

    # ServiceAccount admission added the token volume; the token authenticates as the pod's account.
    volumes = [v["name"] for v in running["spec"]["volumes"]]
    assert any(v.startswith("kube-api-access-") for v in volumes)
    root = node_root(sandbox.dir, running["spec"]["nodeName"])
    projected = root / "var/lib/kubelet/pods" / running["metadata"]["uid"] / "volumes/kubernetes.io~projected"
    token_dir = next(projected.iterdir())
    assert (token_dir / "namespace").read_text() == namespace
    assert "BEGIN CERTIFICATE" in (token_dir / "ca.crt").read_text()
    token = (token_dir / "token").read_text()
    assert sandbox.kubectl("--token", token, "get", "pod", "hello", "-n", namespace, "-o", "name").stdout == (
        "pod/hello\n"
    )


def test_node_selector_is_honoured_and_an_unschedulable_pod_is_reported(
    sandbox: Sandbox, namespace: str
) -> None:
    idle = {"name": "c", "image": "busybox"}
    apply(
        sandbox,
        namespace,
        pod("picky", idle, nodeSelector={"kubernetes.io/hostname": "sandbox-node-2"}),
        pod("nowhere", idle, nodeSelector={"disk": "none-such"}),
    )
    assert wait_pod(sandbox, namespace, "picky", "Running")["spec"]["nodeName"] == "sandbox-node-2"

    def reported() -> JsonObject | None:
        current = get_pod(sandbox, namespace, "nowhere")
        scheduled = next(
            (c for c in current["status"].get("conditions") or [] if c["type"] == "PodScheduled"), None
        )
        return scheduled if scheduled and scheduled["status"] == "False" else None

    scheduled = eventually(reported, timeout=10)
    assert scheduled["reason"] == "Unschedulable"
    assert scheduled["message"].startswith(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    )
    assert "nodeName" not in get_pod(sandbox, namespace, "nowhere")["spec"]
    events = sandbox.kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", "reason=FailedScheduling"
    )
    assert [e["involvedObject"]["name"] for e in events["items"]] == ["nowhere"]


def test_a_claim_volume_is_linked_under_the_node_and_writes_land_in_the_volume(
    sandbox: Sandbox, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    writer = {
        "name": "c",
        "image": "busybox",
        "command": ["sh", "-c", "echo from-the-pod > /data/file; sleep 3600"],
        "volumeMounts": [{"name": "d", "mountPath": "/data"}],
    }
    apply(
        sandbox,
        namespace,
        claim,
        pod("user", writer, volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]),
    )
    running = wait_pod(sandbox, namespace, "user", "Running")
    pv_name = sandbox.kubectl_json("get", "pvc", "data", "-n", namespace)["spec"]["volumeName"]
    pv = sandbox.kubectl_json("get", "pv", pv_name)
    root = node_root(sandbox.dir, running["spec"]["nodeName"])
    volumes = root / "var/lib/kubelet/pods" / running["metadata"]["uid"] / "volumes"
    if "csi" in pv["spec"]:
        link = volumes / "kubernetes.io~csi" / pv_name / "mount"
        data = volume_dir(sandbox.dir, pv["spec"]["csi"]["volumeHandle"])
    else:
        link = volumes / "kubernetes.io~host-path" / "d"
        data = Path(pv["spec"]["hostPath"]["path"])
    assert link.is_symlink()
    assert link.resolve() == data.resolve()
    assert eventually((data / "file").exists, timeout=5)
    assert (data / "file").read_text() == "from-the-pod\n"


def test_a_failing_container_restarts_and_its_previous_log_is_kept(sandbox: Sandbox, namespace: str) -> None:
    apply(
        sandbox,
        namespace,
        pod("crash", {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo attempt; exit 3"]}),
    )

    def restarted() -> JsonObject | None:
        status = get_pod(sandbox, namespace, "crash")["status"]["containerStatuses"][0]
        return status if status["restartCount"] >= 1 else None

    status = eventually(restarted, timeout=15, interval=0.1)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert sandbox.kubectl("logs", "-n", namespace, "crash", "--previous").stdout == "attempt\n"
    phase = get_pod(sandbox, namespace, "crash")["status"]["phase"]
    assert phase == "Running"  # restartPolicy Always: the pod keeps running its container


def test_graceful_deletion_stops_the_process_and_removes_the_pod(sandbox: Sandbox, namespace: str) -> None:
    marker = f"/graceful/{namespace}"
    script = f"trap 'echo terminated > {marker}/term; exit 0' TERM; echo $$$$ > {marker}/pid; while true; do sleep 0.1; done"
    apply(
        sandbox,
        namespace,
        pod(
            "victim",
            {
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "host", "mountPath": marker}],
            },
            terminationGracePeriodSeconds=20,
            volumes=[{"name": "host", "hostPath": {"path": marker, "type": "DirectoryOrCreate"}}],
        ),
    )
    running = wait_pod(sandbox, namespace, "victim", "Running")
    host_dir = node_root(sandbox.dir, running["spec"]["nodeName"]) / marker.lstrip("/")
    pid = int(eventually(lambda: (host_dir / "pid").exists() and (host_dir / "pid").read_text(), timeout=5))
    assert pid_alive(pid)
    sandbox.kubectl("delete", "pod", "victim", "-n", namespace, "--timeout=15s")
    assert sandbox.kubectl("get", "pod", "victim", "-n", namespace, check=False).returncode != 0
    assert not pid_alive(pid)
    assert (host_dir / "term").read_text() == "terminated\n"  # SIGTERM came first
    assert not (
        node_root(sandbox.dir, running["spec"]["nodeName"])
        / "var/lib/kubelet/pods"
        / running["metadata"]["uid"]
    ).exists()


def test_a_pod_of_the_strongroom_image_runs_the_local_strongroom(sandbox: Sandbox, namespace: str) -> None:
    apply(
        sandbox,
        namespace,
        pod(
            "tool",
            {
                "name": "strongroom",
                "image": "strongroom/strongroom:0.1.0",
                "command": ["strongroom"],
                "args": ["version"],
            },
            restartPolicy="Never",
        ),
    )
    done = wait_pod(sandbox, namespace, "tool", "Succeeded", timeout=30)
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert condition(done, "Ready")["reason"] == "PodCompleted"
    expected = ok("version").stdout  # the same command, run here
    assert sandbox.kubectl("logs", "-n", namespace, "tool").stdout == expected


def test_logs_need_a_container_name_when_there_are_several(sandbox: Sandbox, namespace: str) -> None:
    apply(
        sandbox,
        namespace,
        pod(
            "pair",
            {
                "name": "a",
                "image": "busybox",
                "command": ["sh", "-c", "for i in 1 2 3 4; do echo a$i; done; sleep 3600"],
            },
            {"name": "b", "image": "busybox"},
        ),
    )
    wait_pod(sandbox, namespace, "pair", "Running")
    ambiguous = sandbox.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/pair/log", check=False)
    assert ambiguous.returncode != 0
    assert "a container name must be specified for pod pair, choose one of: [a b]" in ambiguous.stderr
    wrong = sandbox.kubectl("logs", "-n", namespace, "pair", "-c", "zzz", check=False)
    assert "container zzz is not valid for pod pair" in wrong.stderr
    assert eventually(
        lambda: sandbox.kubectl("logs", "-n", namespace, "pair", "-c", "a", "--tail=2").stdout == "a3\na4\n"
    )
    assert sandbox.kubectl("logs", "-n", namespace, "pair", "-c", "a", "--limit-bytes=5").stdout == "a1\na2"
    previous = sandbox.kubectl("logs", "-n", namespace, "pair", "-c", "a", "--previous", check=False)
    assert 'previous terminated container "a" in pod "pair" not found' in previous.stderr


def test_follow_streams_until_the_container_ends(sandbox: Sandbox, namespace: str) -> None:
    apply(
        sandbox,
        namespace,
        pod(
            "counter",
            {
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done"],
            },
            restartPolicy="Never",
        ),
    )
    wait_pod(sandbox, namespace, "counter", "Running")
    followed = sandbox.kubectl("logs", "-f", "-n", namespace, "counter", timeout=20).stdout
    assert followed == "line1\nline2\nline3\n"
    assert wait_pod(sandbox, namespace, "counter", "Succeeded")["status"]["phase"] == "Succeeded"


def test_binding_subresource_binds_once(sandbox: Sandbox, namespace: str) -> None:
    apply(sandbox, namespace, pod("manual", {"name": "c", "image": "busybox"}, schedulerName="my-scheduler"))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "manual"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "sandbox-node-1"},
    }
    path = f"/api/v1/namespaces/{namespace}/pods/manual/binding"
    sandbox.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(binding))
    bound = wait_pod(sandbox, namespace, "manual", "Running")
    assert bound["spec"]["nodeName"] == "sandbox-node-1"
    again = sandbox.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(binding), check=False)
    assert again.returncode != 0
    assert 'pod manual is already assigned to node "sandbox-node-1"' in again.stderr


def test_service_account_tokens_authenticate_until_the_account_is_gone(
    sandbox: Sandbox, namespace: str
) -> None:
    sandbox.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = sandbox.kubectl("create", "token", "robot", "-n", namespace, "--duration=15m").stdout.strip()
    listed = sandbox.kubectl("--token", token, "get", "serviceaccounts", "-n", namespace, "-o", "name").stdout
    assert "serviceaccount/robot" in listed.splitlines()
    claims = json.loads(_b64url(token.split(".")[1]))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    assert claims["exp"] - claims["iat"] == 900

    assert _http_status(sandbox, token) == 200
    assert _http_status(sandbox, token[:-4] + "AAAA") == 401  # a forged signature
    assert _http_status(sandbox, "not-a-token") == 401
    sandbox.kubectl("delete", "serviceaccount", "robot", "-n", namespace)
    assert _http_status(sandbox, token) == 401


def test_sandbox_status_lists_the_nodes_with_their_roots(sandbox: Sandbox) -> None:
    out = ok("sandbox", "status", "--dir", str(sandbox.dir), "-o", "json").stdout
    nodes = json.loads(out)["nodes"]
    root = sandbox.dir.resolve()
    assert nodes == [
        {"name": "sandbox-node-1", "root": str(root / "nodes" / "sandbox-node-1")},
        {"name": "sandbox-node-2", "root": str(root / "nodes" / "sandbox-node-2")},
    ]


def test_a_restarted_sandbox_restarts_the_running_containers(tmp_path: Path) -> None:
    directory = tmp_path / "reboot"
    state = runner.start_detached(directory, port=None, nodes=1, insecure=False)
    env = {**os.environ, "KUBECONFIG": state.kubeconfig}

    def kubectl(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [kubectl_binary(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        keeper = pod(
            "keeper", {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo started; sleep 3600"]}
        )
        kubectl("apply", "-n", "default", "-f", "-", stdin=yaml.safe_dump(keeper))
        kubectl("wait", "pod/keeper", "--for=condition=Ready", "--timeout=20s")
        runner.stop(directory)
        state = runner.start_detached(directory, port=None, nodes=1, insecure=False)

        def restarted() -> JsonObject | None:
            current = json.loads(kubectl("get", "pod", "keeper", "-o", "json"))
            status = current["status"]["containerStatuses"][0]
            return status if status["restartCount"] == 1 and "running" in status["state"] else None

        status = eventually(restarted, timeout=20, interval=0.1)
        assert status["lastState"]["terminated"]["reason"] == "Unknown"
        assert kubectl("logs", "keeper") == "started\n"
        assert kubectl("logs", "keeper", "--previous") == "started\n"
    finally:
        runner.stop(directory)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _http_status(sandbox: Sandbox, token: str) -> int:
    context = ssl.create_default_context(cafile=str(sandbox.dir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"{sandbox.server}/api/v1/namespaces/default/serviceaccounts",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _processes_running(needle: str) -> list[int]:
    """Live container processes whose command line contains ``needle`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle not in cmdline or "bwrap" in cmdline or "kubectl" in cmdline:
            continue  # the container's own processes only, not its sandbox or the client
        if pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_volume_named_like_a_host_path_is_refused(sandbox: Sandbox, namespace: str) -> None:
    bad = pod(
        "escape",
        {"name": "c", "image": "busybox", "volumeMounts": [{"name": "/etc/cron.d", "mountPath": "/x"}]},
        volumes=[{"name": "/etc/cron.d", "configMap": {"name": "anything"}}],
    )
    done = sandbox.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert done.returncode != 0
    assert (
        'spec.volumes[0].name: Invalid value: "/etc/cron.d": a lowercase RFC 1123 label must consist of'
        in done.stderr
    )


def test_a_sub_path_file_and_a_sub_path_expression_are_mounted(sandbox: Sandbox, namespace: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"app.conf": "answer=42\n"},
    }
    script = "cat /config/app.conf; echo per-pod > /data/out; echo literal > /literal/out; sleep 3600"
    container = {
        "name": "c",
        "image": "busybox",
        "command": ["sh", "-c", script],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/config/app.conf", "subPath": "app.conf"},
            {"name": "scratch", "mountPath": "/data", "subPathExpr": "$(POD_NAME)"},
            {"name": "scratch", "mountPath": "/literal", "subPath": "$(POD_NAME)"},
        ],
    }
    apply(
        sandbox,
        namespace,
        config,
        pod(
            "sub",
            container,
            volumes=[{"name": "cfg", "configMap": {"name": "settings"}}, {"name": "scratch", "emptyDir": {}}],
        ),
    )
    running = wait_pod(sandbox, namespace, "sub", "Running")
    logs = eventually(lambda: sandbox.kubectl("logs", "-n", namespace, "sub").stdout or None, timeout=5)
    assert logs == "answer=42\n"
    scratch = (
        node_root(sandbox.dir, running["spec"]["nodeName"])
        / "var/lib/kubelet/pods"
        / running["metadata"]["uid"]
        / "volumes/kubernetes.io~empty-dir/scratch"
    )
    assert eventually((scratch / "sub" / "out").exists, timeout=5)
    assert (scratch / "sub" / "out").read_text() == "per-pod\n"
    assert (scratch / "$(POD_NAME)" / "out").read_text() == "literal\n"


def test_the_projected_token_outlives_its_hour_and_strongroom_pods_get_home_tmp(
    sandbox: Sandbox, namespace: str
) -> None:
    token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    apply(
        sandbox,
        namespace,
        pod(
            "reader", {"name": "c", "image": "busybox", "command": ["cat", token_file]}, restartPolicy="Never"
        ),
        pod(
            "home",
            {
                "name": "c",
                "image": "strongroom/strongroom:1",
                "command": ["sh", "-c", "echo $HOME; ls /root"],
            },
            restartPolicy="Never",
        ),
    )
    wait_pod(sandbox, namespace, "reader", "Succeeded")
    token = sandbox.kubectl("logs", "-n", namespace, "reader").stdout.strip()
    claims = json.loads(_b64url(token.split(".")[1]))
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600  # kube's extended expiry for 3607 s
    assert claims["kubernetes.io"]["pod"]["name"] == "reader"
    # The host's /root (with its kubeconfig) is not visible: ls fails, the pod fails.
    wait_pod(sandbox, namespace, "home", "Failed")
    assert sandbox.kubectl("logs", "-n", namespace, "home").stdout.splitlines()[0] == "/tmp"


def test_a_pod_on_a_node_no_kubelet_runs_is_deleted_at_once(sandbox: Sandbox, namespace: str) -> None:
    apply(sandbox, namespace, pod("orphan", {"name": "c", "image": "busybox"}, nodeName="no-such-node"))
    sandbox.kubectl("delete", "pod", "orphan", "-n", namespace, "--wait=false")
    assert sandbox.kubectl("get", "pod", "orphan", "-n", namespace, check=False).returncode != 0


def test_an_unexpected_volume_failure_is_reported_as_failed_mount(sandbox: Sandbox, namespace: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "clash"},
        "data": {"a": "1", "b": "2"},
    }
    # "x" is written as a file, then "x/y" needs it to be a directory: the kubelet's write fails.
    items = [{"key": "a", "path": "x"}, {"key": "b", "path": "x/y"}]
    apply(
        sandbox,
        namespace,
        config,
        pod(
            "clash",
            {"name": "c", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
            volumes=[{"name": "v", "configMap": {"name": "clash", "items": items}}],
        ),
    )

    def failed_mount() -> JsonObject | None:
        events = sandbox.kubectl_json(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "involvedObject.name=clash,reason=FailedMount",
        )
        return events["items"][0] if events["items"] else None

    event = eventually(failed_mount, timeout=10)
    assert event["message"].startswith("MountVolume.SetUp failed")
    assert get_pod(sandbox, namespace, "clash")["status"]["phase"] == "Pending"
    sandbox.kubectl("delete", "pod", "clash", "-n", namespace, "--timeout=15s")


def test_probe_and_exec_processes_end_with_the_pod(sandbox: Sandbox, namespace: str) -> None:
    marker_probe, marker_exec = "sleep 2871", "sleep 2872"
    probe = {"exec": {"command": ["sh", "-c", f"{marker_probe}; true"]}, "timeoutSeconds": 600}
    apply(
        sandbox,
        namespace,
        pod(
            "probed",
            {"name": "c", "image": "busybox", "readinessProbe": probe},
            terminationGracePeriodSeconds=1,
        ),
    )
    wait_pod(sandbox, namespace, "probed", "Running")
    env = {**os.environ, "KUBECONFIG": sandbox.kubeconfig}
    session = subprocess.Popen(
        [kubectl_binary(), "exec", "-n", namespace, "probed", "--", "sh", "-c", f"{marker_exec}; true"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: _processes_running(marker_probe) or None, timeout=10, interval=0.1)
        eventually(lambda: _processes_running(marker_exec) or None, timeout=10, interval=0.1)
        sandbox.kubectl("delete", "pod", "probed", "-n", namespace, "--timeout=15s")
        eventually(
            lambda: not _processes_running(marker_probe) and not _processes_running(marker_exec), timeout=5
        )
    finally:
        session.kill()
        session.wait()


def test_a_process_in_a_session_of_its_own_is_killed_with_its_pod(sandbox: Sandbox, namespace: str) -> None:
    # The container ignores SIGTERM, so the grace period ends in a kill; as a runtime kills the
    # container's whole cgroup, a process that left the process group (restic does) is killed too.
    marker = "sleep 2874"
    script = f"trap '' TERM; setsid {marker} & while true; do sleep 0.1; done"
    container = {"name": "c", "image": "busybox", "command": ["sh", "-c", script]}
    apply(sandbox, namespace, pod("detached", container, terminationGracePeriodSeconds=1))
    wait_pod(sandbox, namespace, "detached", "Running")
    eventually(lambda: _processes_running(marker) or None, timeout=10, interval=0.1)
    sandbox.kubectl("delete", "pod", "detached", "-n", namespace, "--timeout=15s")
    eventually(lambda: not _processes_running(marker), timeout=5)


def test_an_exec_client_going_away_ends_everything_its_command_started(
    sandbox: Sandbox, namespace: str
) -> None:
    marker = "sleep 2873"
    apply(sandbox, namespace, pod("shell", {"name": "c", "image": "busybox"}))
    wait_pod(sandbox, namespace, "shell", "Running")
    env = {**os.environ, "KUBECONFIG": sandbox.kubeconfig}
    session = subprocess.Popen(
        [kubectl_binary(), "exec", "-n", namespace, "shell", "--", "sh", "-c", f"{marker}; true"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: _processes_running(marker) or None, timeout=10, interval=0.1)
    finally:
        session.kill()
        session.wait()
    eventually(lambda: not _processes_running(marker), timeout=5)
