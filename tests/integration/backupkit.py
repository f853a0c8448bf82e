"""Helpers for backup and restore tests: the command line run in-process, and a sample application.

`Cli` runs `strongroom` exactly as the console script does (same error
handling and exit codes) with its own config directory, against the
session's sandbox. `deploy_sample` creates the application the issue names
(namespace, deployment, service, configmap, secret, service account, role
and binding, PVC bound to a PV, custom resources of a CRD) in a namespace
of the test's own.
"""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.sandboxapi import eventually

from strongroom.cli.main import run_cli


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    sandbox: Sandbox
    config_dir: Path
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, kube: bool = True) -> CliResult:
        argv = list(args)
        if kube and argv[:2] in (["backup", "create"], ["restore", "create"]):
            argv += ["--kubeconfig", self.sandbox.kubeconfig]
        self.monkeypatch.setenv("STRONGROOM_CONFIG_DIR", str(self.config_dir))
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = run_cli(argv)
        return CliResult(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str) -> CliResult:
        result = self(*args)
        assert result.code == 0, (
            f"strongroom {' '.join(args)} exited {result.code}:\n{result.stdout}\n{result.stderr}"
        )
        return result

    @property
    def storage(self) -> Path:
        """The built-in default location's directory."""
        return self.config_dir / "storage"


class KubeCli:
    """The command line in this process; cluster commands get the sandbox's kubeconfig."""

    def __init__(self, cli: Cli, sandbox: Sandbox) -> None:
        self.cli = cli
        self._kubeconfig = sandbox.kubeconfig

    def ok(self, *args: str, kube: bool = True) -> CliResult:
        argv = [*args, "--kubeconfig", self._kubeconfig] if kube else list(args)
        result = self.cli(*argv, kube=False)
        assert result.code == 0, (
            f"strongroom {' '.join(argv)} exited {result.code}:\n{result.stdout}\n{result.stderr}"
        )
        return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


SAMPLE_GROUP = "stable.example.com"


def sample_manifests(namespace: str, group: str = SAMPLE_GROUP) -> list[dict[str, Any]]:
    plural = "crontabs"
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"team": "blue"}},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": namespace, "labels": {"app": "web"}},
            "data": {"index.html": "<h1>hello</h1>"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "db-config", "namespace": namespace, "labels": {"app": "db"}},
            "data": {"max_connections": "100"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-credentials", "namespace": namespace, "labels": {"app": "db"}},
            "type": "Opaque",
            "stringData": {"password": "s3cr3t-value"},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "web-reader", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "web-reader", "namespace": namespace},
            "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-reader"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace, "labels": {"app": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "serviceAccountName": "web",
                        "containers": [{"name": "web", "image": "nginx:1.27"}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 80}],
            },
        },
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": "crontab", "kind": "CronTab"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}}}
                                },
                            }
                        },
                    }
                ],
            },
        },
    ]


def crontabs(namespace: str, group: str = SAMPLE_GROUP) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": f"{group}/v1",
            "kind": "CronTab",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
            "spec": {"cronSpec": spec},
        }
        for name, spec in (("nightly", "0 2 * * *"), ("cleanup", "*/30 * * * *"))
    ]


def apply(sandbox: Sandbox, manifests: list[dict[str, Any]]) -> None:
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))


def deploy_sample(sandbox: Sandbox, namespace: str, group: str = SAMPLE_GROUP) -> None:
    apply(sandbox, sample_manifests(namespace, group))
    eventually(lambda: _established(sandbox, f"crontabs.{group}"))
    eventually(
        lambda: sandbox.kubectl("get", f"crontabs.{group}", "-n", namespace, check=False).returncode == 0
    )
    apply(sandbox, crontabs(namespace, group))
    eventually(lambda: _bound(sandbox, namespace))


def _established(sandbox: Sandbox, crd: str) -> bool:
    conditions = sandbox.kubectl_json("get", "crd", crd).get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _bound(sandbox: Sandbox, namespace: str) -> bool:
    return bool(
        sandbox.kubectl_json("get", "pvc", "data", "-n", namespace).get("status", {}).get("phase") == "Bound"
    )


def delete_namespace(sandbox: Sandbox, namespace: str) -> None:
    sandbox.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=60s")


def get(sandbox: Sandbox, *args: str) -> dict[str, Any] | None:
    proc = sandbox.kubectl("get", *args, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
