"""Helpers for tests of the in-cluster server: `strongroom server` as a real process against a sandbox.

The server runs exactly as its Deployment runs it (the same command), with
short periods so that tests do not wait for minutes, and its JSON log is
read back to find its metrics address and what it did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli
from tests.integration.sandboxapi import eventually

from strongroom.model.crds import crd_manifests

FAST_FLAGS = (
    "--metrics-address",
    "127.0.0.1:0",
    "--log-format",
    "json",
    "--log-level",
    "debug",
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "3s",
    "--retry-period",
    "0.5s",
    "--store-validation-frequency",
    "2s",
    "--backup-sync-period",
    "1s",
)
# libyaml when PyYAML has it (the wheels do): the pure-Python dumper is ~50 times slower.
FAST_YAML_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def install_crds(sandbox: Sandbox) -> None:
    manifests = crd_manifests()
    # libyaml's dumper: the pure-Python one takes 0.2 s for these twelve documents.
    sandbox.kubectl("apply", "-f", "-", input=yaml.dump_all(manifests, Dumper=FAST_YAML_DUMPER))
    names = [f"crd/{crd['metadata']['name']}" for crd in manifests]

    def established() -> bool:
        # One `kubectl get` for all of them; a `kubectl wait` per CRD took ~2 s in all.
        listed = sandbox.kubectl_json("get", *names)
        return len(listed["items"]) == len(names) and all(
            any(
                condition.get("type") == "Established" and condition.get("status") == "True"
                for condition in (item.get("status") or {}).get("conditions") or []
            )
            for item in listed["items"]
        )

    eventually(established, timeout=30, interval=0.1)


@dataclass
class ServerProcess:
    """One `strongroom server` process; ``start`` again after ``kill`` is a restart."""

    sandbox: Sandbox
    namespace: str
    log_path: Path
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    _log_file: Any = field(default=None, repr=False)

    def start(self) -> ServerProcess:
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "strongroom",
                "server",
                "--kubeconfig",
                self.sandbox.kubeconfig,
                "--namespace",
                self.namespace,
                *FAST_FLAGS,
                *self.extra,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POD_NAME": self.log_path.stem},
        )
        return self

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def logged(self, fragment: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if fragment in str(r.get("msg", ""))]

    def wait_leading(self, timeout: float = 20.0) -> None:
        eventually(lambda: self.logged("became the leader"), timeout=timeout)

    @property
    def metrics_url(self) -> str:
        record = eventually(lambda: self.logged("serving /metrics"), timeout=20)[-1]
        return f"http://{record['address']}"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._close()

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            self._close()
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        self._close()
        return code

    def _close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def shell_cli(sandbox: Sandbox, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The command line as a user's shell runs it: the cluster from $KUBECONFIG, the mode found by itself."""
    monkeypatch.setenv("KUBECONFIG", sandbox.kubeconfig)
    monkeypatch.delenv("STRONGROOM_MODE", raising=False)
    monkeypatch.delenv("STRONGROOM_NAMESPACE", raising=False)
    return Cli(sandbox, config_dir, monkeypatch)


def get(sandbox: Sandbox, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    proc = sandbox.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def wait_phase(
    sandbox: Sandbox, kind: str, name: str, namespace: str, wanted: tuple[str, ...], timeout: float = 30.0
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = get(sandbox, kind, name, namespace)
        got = ((obj or {}).get("status") or {}).get("phase")
        return obj if got in wanted else None

    result: dict[str, Any] = eventually(reached, timeout=timeout, interval=0.2)
    return result


def apply_yaml(sandbox: Sandbox, *documents: dict[str, Any]) -> None:
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(list(documents)))


def local_location(name: str, namespace: str, directory: Path, **spec: Any) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": "local",
            "objectStorage": {"bucket": str(directory), "prefix": "velero"},
            **spec,
        },
    }


def velero(kind: str, name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A velero.io/v1 resource of ``kind`` with ``spec``."""
    return {
        "apiVersion": "velero.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def backup(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return velero("Backup", name, namespace, **spec)
