"""Running `strongroom ...` in the test process (no interpreter start-up), and the flags that point
`strongroom etcd` at a test cluster."""

from __future__ import annotations

import hashlib
import io
import json
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.integration.etcdkit import EtcdCluster

from strongroom.cli.main import run_cli
from strongroom.etcd.snapshot import snapshot_time


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def strongroom(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def ok(*args: str) -> Result:
    result = strongroom(*args)
    assert result.code == 0, (
        f"strongroom {' '.join(args)} exited {result.code}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def flags(cluster: EtcdCluster, endpoints: list[str] | None = None) -> list[str]:
    """--endpoints and, for a TLS cluster, --cacert/--cert/--key."""
    out = ["--endpoints", ",".join(endpoints or cluster.endpoints)]
    if cluster.tls is not None:
        out += [
            "--cacert",
            str(cluster.tls.ca),
            "--cert",
            str(cluster.tls.client_cert),
            "--key",
            str(cluster.tls.client_key),
        ]
    return out


def after_second_of(snapshot: str) -> None:
    """Until the clock has left the second ``snapshot`` is named after (names have a one-second
    resolution), so that the next snapshot gets a later name; no wait once it has."""
    remaining = snapshot_time(snapshot) + timedelta(seconds=1) - datetime.now(UTC)
    if remaining > timedelta(0):
        time.sleep(remaining.total_seconds() + 0.01)


def into_next_second() -> None:
    """Into the next wall-clock second: a snapshot saved after this is named after any saved before."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under root with its sha256: to prove that a refused command changed nothing."""
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def apiserver_mirror_pod(name: str, endpoints: list[str]) -> dict[str, object]:
    """A kubeadm kube-apiserver's mirror pod naming etcd, bound to a node the sandbox does not know
    (so nothing runs it); its certificate paths are the host's /etc/kubernetes/pki."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": {"component": "kube-apiserver", "tier": "control-plane"},
        },
        "spec": {
            "nodeName": f"{name}-gone-node",
            "containers": [
                {
                    "name": "kube-apiserver",
                    "image": "registry.k8s.io/kube-apiserver:v1.32.0",
                    "command": [
                        "kube-apiserver",
                        f"--etcd-servers={','.join(endpoints)}",
                        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
                        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
                    ],
                    "volumeMounts": [
                        {"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki", "readOnly": True}
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "k8s-certs",
                    "hostPath": {"path": "/etc/kubernetes/pki", "type": "DirectoryOrCreate"},
                }
            ],
        },
    }
