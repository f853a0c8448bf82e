"""The scheduled etcd backup end to end: the installed CronJob's pod really saves, verifies and prunes.

`strongroom install --etcd-backup-schedule` renders a CronJob whose pod, on a
control-plane node, finds etcd from the kube-apiserver pod's flags (its
certificates read through the node's /etc/kubernetes, mounted at
/host/etc/kubernetes) and saves to the cluster's BackupStorageLocation. The
sandbox has no CronJob controller, so each run is started as an administrator
starts one by hand: ``kubectl create job --from=cronjob/...``. The etcd is a
real TLS member of the kit; the kube-apiserver is a mirror pod bound to a node
nobody runs, as in test_etcd_cluster_access.py.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, KubeCli, unique
from tests.integration.etcdcli import after_second_of, apiserver_mirror_pod
from tests.integration.etcdkit import start_cluster

from strongroom.deploy.manifests import ETCD_BACKUP_NAME, InstallOptions, render

pytestmark = pytest.mark.integration

SCHEDULE = "0 */6 * * *"
LOCATION = "etcd-bsl"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
JOB_TIMEOUT = 180.0
SNAPSHOTS = "plugins/strongroom/etcd"
SAVED = re.compile(r"snapshot saved to .* as (snapshot_\d{4}-\d{2}-\d{2}_\d{6}\.db) ")


Strongroom = KubeCli


@pytest.fixture
def strongroom(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Strongroom:
    return Strongroom(Cli(sandbox, tmp_path / "config", monkeypatch), sandbox)


@pytest.fixture
def target(strongroom: Strongroom) -> Iterator[str]:
    """A namespace to install into; uninstalled afterwards, CRDs kept (other modules use them)."""
    name = unique("sr-etcdjob")
    yield name
    strongroom.ok("uninstall", "--namespace", name, "--yes", "--keep-crds", "--timeout", "60s")


def _node_root(strongroom: Strongroom, sandbox: Sandbox) -> tuple[str, Path]:
    """The first sandbox node and the directory it sees as /."""
    status = strongroom.ok("sandbox", "status", "--dir", str(sandbox.dir), "-o", "json", kube=False)
    node = status.json()["nodes"][0]
    return node["name"], Path(node["root"])


def _run_job(sandbox: Sandbox, namespace: str, name: str) -> str:
    """Start a run of the CronJob with `kubectl create job --from`, wait for it, and return its log."""
    sandbox.kubectl("create", "job", name, f"--from=cronjob/{ETCD_BACKUP_NAME}", "-n", namespace)
    deadline = time.monotonic() + JOB_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        job = sandbox.kubectl_json("get", "job", name, "-n", namespace)
        conditions = {
            c["type"]: c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"
        }
        if "Complete" in conditions or "Failed" in conditions:
            state = "Complete" if "Complete" in conditions else f"Failed: {conditions['Failed']}"
            break
        time.sleep(0.2)
    logs = sandbox.kubectl("logs", f"job/{name}", "-n", namespace, "--tail=-1", check=False)
    log = logs.stdout + logs.stderr
    if state != "Complete":
        pods = sandbox.kubectl("get", "pods", "-n", namespace, "-o", "wide", "--show-labels", check=False)
        raise AssertionError(
            f"job {name} did not complete within {JOB_TIMEOUT:.0f}s ({state or 'still running'})\n"
            f"pods:\n{pods.stdout}{pods.stderr}\nlog:\n{log}"
        )
    return log


def _saved_name(log: str) -> str:
    found = SAVED.search(log)
    assert found, f"the pod's log does not say which snapshot it saved:\n{log}"
    return found.group(1)


def test_the_cronjobs_pod_saves_verifies_and_prunes_etcd_snapshots_in_the_location(
    strongroom: Strongroom,
    sandbox: Sandbox,
    target: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    node, root = _node_root(strongroom, sandbox)
    pki = root / "etc/kubernetes/pki"
    pki_existed = pki.exists()
    apiserver = unique("kube-apiserver-sched")
    with start_cluster(tmp_path / "etcd", 1, tls=True) as cluster:
        assert cluster.tls is not None
        keys = {f"/scheduled-backup/key-{i}": f"value-{i}-{unique('v')}" for i in range(5)}
        for key, value in keys.items():
            cluster.put(key, value)

        strongroom.ok(
            "install", "--namespace", target, "--no-use-node-agent",
            "--etcd-backup-schedule", SCHEDULE, "--etcd-backup-location", LOCATION,
            "--etcd-backup-keep-last", "2",
        )  # fmt: skip
        try:
            # The node's kubeadm files, as the kube-apiserver names them.
            (pki / "etcd").mkdir(parents=True, exist_ok=True)
            shutil.copy(cluster.tls.ca, pki / "etcd/ca.crt")
            shutil.copy(cluster.tls.client_cert, pki / "apiserver-etcd-client.crt")
            shutil.copy(cluster.tls.client_key, pki / "apiserver-etcd-client.key")
            sandbox.kubectl("label", "node", node, f"{CONTROL_PLANE}=", "--overwrite")
            sandbox.kubectl(
                "create", "-f", "-", input=json.dumps(apiserver_mirror_pod(apiserver, cluster.endpoints))
            )
            sandbox.kubectl(
                "apply",
                "-f",
                "-",
                input=json.dumps(
                    {
                        "apiVersion": "velero.io/v1",
                        "kind": "BackupStorageLocation",
                        "metadata": {"name": LOCATION, "namespace": target},
                        "spec": {"provider": "local", "objectStorage": {"bucket": str(bucket)}},
                    }
                ),
            )

            first_log = _run_job(sandbox, target, "run-1")
            assert (
                f"etcd endpoints from the kube-apiserver pod {apiserver}: {cluster.endpoints[0]}" in first_log
            ), first_log
            first = _saved_name(first_log)
            assert f"{first}: verified" in first_log, first_log
            pod_node = sandbox.kubectl(
                "get",
                "pods",
                "-n",
                target,
                "-l",
                "job-name=run-1",
                "-o",
                "jsonpath={.items[*].spec.nodeName}",
            ).stdout
            assert pod_node == node, f"the backup ran on {pod_node!r}, not on the control-plane node {node}"

            stored = bucket / SNAPSHOTS
            stem = first.removesuffix(".db")
            assert (stored / first).is_file(), sorted(p.name for p in stored.iterdir())
            assert (stored / f"{stem}.json").is_file(), sorted(p.name for p in stored.iterdir())
            verifications = sorted(stored.glob(f"{stem}.verified-*.json"))
            assert len(verifications) == 1, sorted(p.name for p in stored.iterdir())
            assert json.loads(verifications[0].read_text())["ok"] is True

            status = strongroom.ok(
                "etcd", "snapshot", "status", str(stored / first), "-o", "json", kube=False
            )
            assert status.json()["totalKey"] >= len(keys), status.stdout
            content = (stored / first).read_bytes()
            for key, value in keys.items():
                assert key.encode() in content and value.encode() in content, f"{key} is not in {first}"

            names = [first]
            for run in ("run-2", "run-3"):
                after_second_of(names[-1])  # snapshot names have a one-second resolution
                names.append(_saved_name(_run_job(sandbox, target, run)))
            assert len(set(names)) == 3, names

            left = sorted(p.name for p in stored.iterdir())
            assert sorted(p.name for p in stored.glob("snapshot_*.db")) == sorted(names[1:]), left
            assert not [name for name in left if name.startswith(stem)], left
            for name in names[1:]:
                kept = name.removesuffix(".db")
                assert f"{kept}.json" in left, left
                assert len([n for n in left if n.startswith(f"{kept}.verified-")]) == 1, left
            # `snapshot list` takes no --kubeconfig: the cluster's location is found through $KUBECONFIG.
            monkeypatch.setenv("KUBECONFIG", sandbox.kubeconfig)
            listed = strongroom.ok(
                "etcd", "snapshot", "list", "--storage-location", LOCATION, "--namespace", target, "-o", "json",
                kube=False,
            ).json()  # fmt: skip
            assert sorted(item["name"] for item in listed) == sorted(names[1:]), listed
        finally:
            sandbox.kubectl(
                "delete",
                "pod",
                apiserver,
                "-n",
                "kube-system",
                "--ignore-not-found",
                "--wait=false",
                check=False,
            )
            sandbox.kubectl("label", "node", node, f"{CONTROL_PLANE}-", check=False)
            if not pki_existed:
                shutil.rmtree(pki, ignore_errors=True)


def test_kubectl_create_job_from_the_etcd_backup_cronjob(sandbox: Sandbox) -> None:
    """What an administrator runs to take a backup now: kubectl posts the whole job template as protobuf."""
    namespace = unique("sr-etcdjob-from")
    options = InstallOptions(
        namespace=namespace, etcd_backup_schedule=SCHEDULE, etcd_backup_location=LOCATION
    )
    (cronjob,) = [doc for doc in render(options) if doc["kind"] == "CronJob"]
    sandbox.kubectl("create", "namespace", namespace)
    try:
        sandbox.kubectl("create", "-f", "-", input=json.dumps(cronjob))
        created = sandbox.kubectl(
            "create", "job", "now", f"--from=cronjob/{ETCD_BACKUP_NAME}", "-n", namespace,
            "--dry-run=server", "-o", "json",
        )  # fmt: skip
        job = json.loads(created.stdout)
        template = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        pod = job["spec"]["template"]["spec"]
        for field in ("volumes", "affinity", "tolerations", "hostNetwork", "priorityClassName"):
            assert pod.get(field) == template[field], field
        assert pod["containers"][0]["volumeMounts"] == template["containers"][0]["volumeMounts"]
        assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
