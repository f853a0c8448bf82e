"""The backup's volume work against a fake cluster: PodVolumeBackups are waited for however late they come."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from tests.runasync import run_async

from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.archive.sidecars import LogWriter
from strongroom.backup.volumes import VolumeBackups
from strongroom.errors import StrongroomError
from strongroom.model.resources import ApiResource

PODS = ApiResource("", "v1", "pods", "Pod", True)
PVBS = ApiResource("velero.io", "v1", "podvolumebackups", "PodVolumeBackup", True)


class _Discovery:
    def find(self, group: str, resource: str) -> ApiResource | None:
        return {("", "pods"): PODS, ("velero.io", "podvolumebackups"): PVBS}.get((group, resource))


class _Cluster:
    """Node agents on every node; PodVolumeBackups finish when the test says so."""

    def __init__(self) -> None:
        self.pvbs: dict[str, dict[str, Any]] = {}
        self.fail_creates = 0

    async def list_all(self, res: ApiResource, **kwargs: Any) -> list[dict[str, Any]]:
        if res is PODS:
            return [
                {
                    "metadata": {"name": f"agent-{node}", "namespace": "velero"},
                    "spec": {"nodeName": node},
                    "status": {"phase": "Running"},
                }
                for node in ("n1", "n2")
            ]
        return list(self.pvbs.values())

    async def create(
        self, res: ApiResource, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        if self.fail_creates:
            self.fail_creates -= 1
            raise StrongroomError("the API server is unavailable")
        name = f"{body['metadata']['generateName']}{len(self.pvbs)}"
        made = {**body, "metadata": {**body["metadata"], "name": name}, "status": {"phase": "New"}}
        self.pvbs[name] = made
        return made

    async def get(self, res: ApiResource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.pvbs.get(name)

    def complete(self) -> None:
        for item in self.pvbs.values():
            item["status"] = {"phase": "Completed", "snapshotID": f"snap-{item['metadata']['name']}"}


def pod(namespace: str, name: str, node: str = "n1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "annotations": {"backup.velero.io/backup-volumes": "cache"},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "volumeMounts": [{"name": "cache", "mountPath": "/c"}]}],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        },
        "status": {"phase": "Running"},
    }


class _Repositories:
    async def ensure(self, volume_namespace: str) -> str:
        return f"/repo/{volume_namespace}"


def volume_backups(cluster: _Cluster, results: Results) -> VolumeBackups:
    log = RunLog(LogWriter(io.BytesIO()), {"backup": "velero/b"})
    backup = {"metadata": {"name": "b", "namespace": "velero"}, "spec": {"storageLocation": "default"}}
    return VolumeBackups(
        cluster,  # type: ignore[arg-type]
        _Discovery(),  # type: ignore[arg-type]
        backup,
        results,
        log,
        repositories=_Repositories(),
        poll=0.01,
    )


@run_async
async def test_copies_started_after_earlier_ones_finished_are_still_waited_for() -> None:
    cluster = _Cluster()
    results = Results()
    work = volume_backups(cluster, results)
    await work.process(PODS, [pod("a", "first")])
    cluster.complete()
    await asyncio.sleep(0.1)  # the first copy is seen finished: nothing is pending any more
    await work.process(PODS, [pod("b", "second", node="n2")])
    cluster.complete()
    report = await asyncio.wait_for(work.finish(), 5)
    assert sorted(item["spec"]["pod"]["name"] for item in report.pod_volume_backups) == ["first", "second"]
    assert all(item["status"]["phase"] == "Completed" for item in report.pod_volume_backups)
    assert results.errors.is_empty()


@run_async
async def test_a_failed_create_is_an_error_of_that_pod_and_the_rest_goes_on() -> None:
    cluster = _Cluster()
    cluster.fail_creates = 1
    results = Results()
    work = volume_backups(cluster, results)
    kept = await work.process(PODS, [pod("a", "first"), pod("a", "second")])
    assert [p["metadata"]["name"] for p in kept] == ["first", "second"]
    cluster.complete()
    report = await asyncio.wait_for(work.finish(), 5)
    assert len(report.pod_volume_backups) == 1
    (message,) = results.errors.namespaces["a"]
    assert "creating its PodVolumeBackup failed" in message
