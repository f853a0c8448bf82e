"""`strongroom cluster redeploy` on the sandbox: the seed's forced rollouts after an etcd restore.

The static pod operators (operator.openshift.io/v1) are served as CRDs, and a
small emulator plays their part: when ``spec.forceRedeploymentReason``
changes it makes a new revision and moves the nodes onto it one at a time,
reporting ``NodeInstallerProgressing`` as the operators do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, CliResult
from tests.integration.openshiftkit import operator_crds, served
from tests.integration.sandboxapi import Kube

pytestmark = pytest.mark.integration

GROUP, VERSION = "operator.openshift.io", "v1"
SERVED = ("etcds", "kubeapiservers", "kubecontrollermanagers")  # kubeschedulers is left unserved
NODES = ("master-0", "master-1", "master-2")
START = 6


def _status(latest: int, at: dict[str, int]) -> dict[str, Any]:
    counts: dict[int, int] = {}
    for revision in at.values():
        counts[revision] = counts.get(revision, 0) + 1
    message = "; ".join(
        f"{n} node{'s' if n != 1 else ''} {'are' if n != 1 else 'is'} at revision {r}"
        for r, n in sorted(counts.items())
    )
    done = all(r == latest for r in at.values())
    return {
        "latestAvailableRevision": latest,
        "nodeStatuses": [{"nodeName": node, "currentRevision": r} for node, r in at.items()],
        "conditions": [
            {
                "type": "NodeInstallerProgressing",
                "status": "False" if done else "True",
                "reason": "AllNodesAtLatestRevision" if done else "NodeInstaller",
                "message": message,
            }
        ],
    }


class OperatorEmulator(threading.Thread):
    """Each tick: a changed forceRedeploymentReason makes revision+1; a rollout moves one more node onto it."""

    def __init__(self, kube: Kube, plurals: tuple[str, ...], tick: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.custom = kube.custom
        self.plurals = plurals
        self.tick = tick
        self.events: list[tuple[str, str]] = []  # (plural, "forced" | "done"), in the order they happened
        self.reasons: dict[str, str] = {}
        self._rolling: dict[str, tuple[int, dict[str, int]]] = {}
        self._halt = threading.Event()

    def _patch(self, plural: str, latest: int, at: dict[str, int]) -> None:
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, plural, "cluster", {"status": _status(latest, at)}
        )

    def step(self) -> None:
        for plural in self.plurals:
            obj = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, "cluster")
            reason = (obj.get("spec") or {}).get("forceRedeploymentReason")
            if reason and reason != self.reasons.get(plural):
                self.reasons[plural] = reason
                self.events.append((plural, "forced"))
                latest = int(obj["status"]["latestAvailableRevision"]) + 1
                at = {n["nodeName"]: n["currentRevision"] for n in obj["status"]["nodeStatuses"]}
                self._rolling[plural] = (latest, at)
                self._patch(plural, latest, at)
            elif plural in self._rolling:
                latest, at = self._rolling[plural]
                behind = [node for node, revision in at.items() if revision != latest]
                at[behind[0]] = latest
                self._patch(plural, latest, at)
                if len(behind) == 1:
                    del self._rolling[plural]
                    self.events.append((plural, "done"))

    def run(self) -> None:
        while not self._halt.wait(self.tick):
            self.step()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


@pytest.fixture(scope="module")
def operators(sandbox: Sandbox) -> Iterator[None]:
    with served(sandbox, *operator_crds(SERVED)):
        yield


def _reset(kube: Kube) -> None:
    """Every operator's ``cluster`` at revision START on every node, no reason forced yet."""
    for plural in SERVED:
        kind = next(c["spec"]["names"]["kind"] for c in operator_crds([plural]))
        try:
            kube.custom.delete_cluster_custom_object(GROUP, VERSION, plural, "cluster")
        except ApiException as exc:
            assert exc.status == 404
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": "cluster"}, "spec": {}}
        kube.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        kube.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, plural, "cluster", {"status": _status(START, dict.fromkeys(NODES, START))}
        )


def _redeploy(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> CliResult:
    cli = Cli(sandbox, tmp_path / "config", monkeypatch)
    return cli("cluster", "redeploy", "--kubeconfig", sandbox.kubeconfig, "--interval", "0.1", *args)


def _object(kube: Kube, plural: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.custom.get_cluster_custom_object(GROUP, VERSION, plural, "cluster")
    return found


def test_redeploy_rolls_out_each_operator_in_the_seeds_order(
    operators: None, sandbox: Sandbox, kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reset(kube)
    emulator = OperatorEmulator(kube, SERVED)
    emulator.start()
    try:
        # Asked in the wrong order: the seed's order is kept.
        result = _redeploy(
            sandbox, tmp_path, monkeypatch,
            "-c", "kube-controller-manager", "-c", "etcd", "-c", "kube-apiserver", "--wait", "60s",
        )  # fmt: skip
    finally:
        emulator.stop()
    assert result.code == 0, result.stdout + result.stderr
    # Each rollout is forced only once the one before it reached every node.
    assert emulator.events == [
        ("etcds", "forced"),
        ("etcds", "done"),
        ("kubeapiservers", "forced"),
        ("kubeapiservers", "done"),
        ("kubecontrollermanagers", "forced"),
        ("kubecontrollermanagers", "done"),
    ], emulator.events
    out = result.stdout
    assert "etcd: 2 nodes are at revision 6; 1 node is at revision 7" in out  # the staged rollout is shown
    assert "etcd: every node runs revision 7" in out
    assert "kube-controller-manager: every node runs revision 7" in out
    assert "every rollout reached every node" in out
    reasons = [_object(kube, plural)["spec"]["forceRedeploymentReason"] for plural in SERVED]
    assert len(set(reasons)) == 3 and all(r.startswith("recovery-") for r in reasons), reasons
    for plural in SERVED:
        status = _object(kube, plural)["status"]
        assert status["latestAvailableRevision"] == START + 1
        assert {n["currentRevision"] for n in status["nodeStatuses"]} == {START + 1}


def test_redeploy_dry_run_changes_nothing_and_a_stuck_rollout_fails_with_its_reason(
    operators: None, sandbox: Sandbox, kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reset(kube)
    dry = _redeploy(sandbox, tmp_path, monkeypatch, "--dry-run", "-c", "etcd", "-c", "kube-apiserver")
    assert dry.code == 0, dry.stderr
    assert "3 nodes are at revision 6" in dry.stdout and "dry run: nothing forced" in dry.stdout
    assert all("forceRedeploymentReason" not in (_object(kube, p).get("spec") or {}) for p in SERVED)

    # No operator answers: the time runs out on etcd, and kube-apiserver is never forced.
    started = time.monotonic()
    stuck = _redeploy(sandbox, tmp_path, monkeypatch, "-c", "etcd", "-c", "kube-apiserver", "--wait", "1s")
    assert stuck.code == 1, stuck.stdout + stuck.stderr
    assert time.monotonic() - started < 30
    assert "not done: etcd: no new revision yet (still 6)" in stuck.stderr
    assert "not done: kube-apiserver: not started, it waits for the rollout before it" in stuck.stderr
    assert _object(kube, "etcds")["spec"]["forceRedeploymentReason"].startswith("recovery-")
    assert "forceRedeploymentReason" not in (_object(kube, "kubeapiservers").get("spec") or {})


def test_redeploy_refuses_what_the_cluster_does_not_serve(
    operators: None, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = _redeploy(sandbox, tmp_path, monkeypatch, "-c", "kube-scheduler")
    assert missing.code != 0
    assert "serves no kubeschedulers.operator.openshift.io" in missing.stderr
    assert "/etc/kubernetes/manifests" in missing.stderr  # what to do instead on plain Kubernetes

    # Without --component all four are meant, the unserved one among them.
    every = _redeploy(sandbox, tmp_path, monkeypatch, "--dry-run")
    assert every.code != 0 and "serves no kubeschedulers.operator.openshift.io" in every.stderr

    unknown = _redeploy(sandbox, tmp_path, monkeypatch, "-c", "kube-proxy")
    assert unknown.code != 0
    assert "unknown component(s): kube-proxy" in unknown.stderr
    assert "etcd, kube-apiserver, kube-controller-manager, kube-scheduler" in unknown.stderr
