"""`strongroom install --dry-run` and the refusal of bad flags, with no cluster anywhere.

The kubeconfig these tests pass names an API server nobody listens on: a
command that contacted it would fail with exit 5 (unavailable), so exit 2
with the flag named shows the value was refused before any request.
"""

from __future__ import annotations

import io
import json
import socket
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from strongroom.cli.main import run_cli
from strongroom.deploy.installer import covers
from strongroom.errors import EXIT_USAGE


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def dead_kubeconfig(tmp_path: Path) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_dry_run_prints_yaml_documents_without_a_cluster(dead_kubeconfig: str) -> None:
    code, out, err = _cli(
        "install", "--dry-run", "--use-node-agent", "--namespace", "dr", "--kubeconfig", dead_kubeconfig
    )
    assert code == 0, err
    documents = list(yaml.safe_load_all(out))
    assert out.startswith("---\n")
    kinds = [doc["kind"] for doc in documents]
    assert kinds[0] == "CustomResourceDefinition"
    assert [k for k in kinds if k in ("Namespace", "Deployment", "DaemonSet")] == [
        "Namespace",
        "Deployment",
        "DaemonSet",
    ]
    assert {doc["metadata"]["name"] for doc in documents if doc["kind"] == "Namespace"} == {"dr"}


def test_dry_run_json_is_a_v1_list() -> None:
    code, out, err = _cli("install", "--dry-run", "-o", "json", "--no-use-node-agent")
    assert code == 0, err
    document = json.loads(out)
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "List"
    assert "DaemonSet" not in {item["kind"] for item in document["items"]}


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--namespace", "Not_A_Namespace"], "--namespace"),
        (["--image", "bad image"], "--image"),
        (["--server-cpu-request", "plenty"], "--server-cpu-request"),
        (["--server-memory-limit", "12Q"], "--server-memory-limit"),
        (["--node-agent-cpu-limit", "x1"], "--node-agent-cpu-limit"),
        (["--replicas", "0"], "--replicas"),
        (["--log-level", "loud"], "--log-level"),
        (["--timeout", "soon"], "--timeout"),
        (["--output", "json"], "--output"),
        (["--https-proxy", "proxy.example.com:3128"], "--https-proxy"),
        (["--http-proxy", "ftp://user:pw@proxy"], "--http-proxy"),
    ],
)
def test_install_refuses_bad_values_before_any_request(
    args: list[str], flag: str, dead_kubeconfig: str
) -> None:
    code, _, err = _cli("install", *args, "--kubeconfig", dead_kubeconfig)
    assert code == EXIT_USAGE, err
    assert flag in err


def test_a_bad_proxy_url_is_named_without_its_password(dead_kubeconfig: str) -> None:
    code, _, err = _cli("install", "--http-proxy", "ftp://user:pw@proxy", "--kubeconfig", dead_kubeconfig)
    assert code == EXIT_USAGE
    assert "ftp://***@proxy" in err and "pw" not in err


def test_proxy_flags_reach_every_container() -> None:
    code, out, err = _cli(
        "install", "--dry-run", "-o", "json", "--use-node-agent", "--etcd-backup-schedule", "@daily",
        "--https-proxy", "http://proxy.example.com:3128", "--no-proxy", ".svc,172.30.0.0/16",
    )  # fmt: skip
    assert code == 0, err
    items = json.loads(out)["items"]
    containers = [
        c
        for item in items
        if item["kind"] in ("Deployment", "DaemonSet", "CronJob")
        for c in (
            item["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            if item["kind"] == "CronJob"
            else item["spec"]["template"]["spec"]["containers"]
        )
    ]
    assert len(containers) == 3
    for container in containers:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HTTPS_PROXY"] == "http://proxy.example.com:3128"
        assert env["NO_PROXY"] == ".svc,172.30.0.0/16"
        assert "HTTP_PROXY" not in env  # only what was given


def test_uninstall_refuses_a_bad_namespace_before_any_request(dead_kubeconfig: str) -> None:
    code, _, err = _cli("uninstall", "--yes", "--namespace", "UPPER", "--kubeconfig", dead_kubeconfig)
    assert code == EXIT_USAGE
    assert "--namespace" in err


def test_uninstall_without_a_terminal_asks_for_confirmation_and_does_nothing(dead_kubeconfig: str) -> None:
    code, _, err = _cli("uninstall", "--namespace", "x", "--kubeconfig", dead_kubeconfig)
    assert code == EXIT_USAGE
    assert "--confirm" in err


def test_an_unreachable_cluster_is_reported_as_unavailable(dead_kubeconfig: str) -> None:
    code, _, err = _cli("install", "--namespace", "x", "--kubeconfig", dead_kubeconfig)
    assert code == 5, err
    assert "cannot reach" in err


def test_live_object_with_server_defaults_covers_the_rendering() -> None:
    desired = {
        "metadata": {"name": "s", "labels": {"a": "1"}},
        "spec": {
            "containers": [
                {"name": "c", "ports": [{"containerPort": 8085}], "resources": {"limits": {"cpu": "1000m"}}}
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }
    live = {
        "metadata": {"name": "s", "uid": "u", "labels": {"a": "1", "extra": "kept"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "ports": [{"containerPort": 8085, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "1"}},
                    "terminationMessagePath": "/dev/termination-log",
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
        "status": {},
    }
    assert covers(desired, live)


@pytest.mark.parametrize(
    "change",
    [
        lambda live: live["metadata"]["labels"].update(a="2"),
        lambda live: live["spec"]["containers"].append({"name": "sidecar"}),
        lambda live: live["spec"]["containers"][0]["resources"]["limits"].update(cpu="2"),
        lambda live: live["spec"].pop("volumes"),
    ],
)
def test_a_difference_in_a_rendered_field_is_not_covered(change: object) -> None:
    desired = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "v"}],
        },
    }
    live = json.loads(json.dumps(desired))
    assert covers(desired, live)
    change(live)  # type: ignore[operator]
    assert not covers(desired, live)
