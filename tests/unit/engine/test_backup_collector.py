"""The collector's own rules, against an in-memory cluster: what is kept, what is pulled in, how failures end."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from strongroom.archive import ArchiveError, BackupReader, BackupWriter, Results
from strongroom.archive.runlog import RunLog
from strongroom.archive.sidecars import LogWriter
from strongroom.backup.collector import BackupScope, Collector
from strongroom.model.resources import ApiResource

VERBS = frozenset({"list", "get", "create", "delete"})
PVCS = ApiResource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, verbs=VERBS)
PVS = ApiResource("", "v1", "persistentvolumes", "PersistentVolume", False, verbs=VERBS)
NAMESPACES = ApiResource("", "v1", "namespaces", "Namespace", False, verbs=VERBS)
CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap", True, verbs=VERBS)
CRONTABS = ApiResource("stable.example.com", "v1", "crontabs", "CronTab", True, verbs=VERBS)
CRDS = ApiResource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, verbs=VERBS
)


def obj(resource: ApiResource, name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **extra.pop("metadata", {})}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": resource.group_version, "kind": resource.kind, "metadata": metadata, **extra}


class FakeKube:
    """Serves fixed items in pages, yielding to the event loop between pages as a network would."""

    def __init__(self, items: Mapping[str, list[dict[str, Any]]], page_size: int = 3) -> None:
        self.items = items
        self.page_size = page_size

    async def list_pages(
        self,
        res: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int = 500,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        matching = [
            i
            for i in self.items.get(res.group_resource, [])
            if namespace is None or i["metadata"].get("namespace") == namespace
        ]
        for start in range(0, len(matching), self.page_size):
            await asyncio.sleep(0)
            yield matching[start : start + self.page_size]


def scope(namespaces: set[str], *, cluster_wholesale: bool = False) -> BackupScope:
    return BackupScope(
        namespace_included=lambda ns: ns in namespaces,
        resource_included=lambda r: r.namespaced or cluster_wholesale or r.group_resource == "namespaces",
        additional_allowed=lambda r: True,
        label_matches=lambda labels: True,
    )


def run(
    kube: FakeKube, backup_scope: BackupScope, resources: list[ApiResource], sink: Any = None
) -> tuple[list[str], Results]:
    buffer = sink if sink is not None else io.BytesIO()
    results = Results()
    log = RunLog(LogWriter(io.BytesIO()), {"backup": "velero/t"})

    async def go() -> None:
        with BackupWriter(buffer) as writer:
            await Collector(kube, writer, backup_scope, results, log, page_size=kube.page_size).run(resources)  # type: ignore[arg-type]

    asyncio.run(go())
    buffer.seek(0)
    names = [str(item.path.path) for item in BackupReader(buffer).items(lambda p: p.version is None)]
    return names, results


def test_cluster_items_needed_by_the_last_pages_are_still_pulled_in() -> None:
    claims = [obj(PVCS, f"c{i}", "app", spec={"volumeName": f"pv-{i}"}) for i in range(20)]
    volumes = [obj(PVS, f"pv-{i}") for i in range(25)]
    kube = FakeKube(
        {
            "persistentvolumeclaims": claims,
            "persistentvolumes": volumes,
            "namespaces": [obj(NAMESPACES, "app"), obj(NAMESPACES, "other")],
        }
    )
    names, results = run(kube, scope({"app"}), [PVCS, PVS, NAMESPACES])
    assert results.errors.is_empty()
    assert sorted(n for n in names if n.startswith("resources/persistentvolumes/")) == sorted(
        f"resources/persistentvolumes/cluster/pv-{i}.json" for i in range(20)
    )
    assert (
        "resources/namespaces/cluster/app.json" in names
        and "resources/namespaces/cluster/other.json" not in names
    )


def test_custom_resources_pull_in_their_definition_only() -> None:
    kube = FakeKube({
        "crontabs.stable.example.com": [obj(CRONTABS, "nightly", "app")],
        "customresourcedefinitions.apiextensions.k8s.io": [obj(CRDS, "crontabs.stable.example.com"), obj(CRDS, "widgets.other.io")],
    })  # fmt: skip
    names, _ = run(kube, scope({"app"}), [CRONTABS, CRDS])
    assert (
        "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/crontabs.stable.example.com.json"
        in names
    )
    assert not any("widgets.other.io" in name for name in names)


def test_exclude_label_and_namespace_filter() -> None:
    kube = FakeKube({"configmaps": [
        obj(CONFIGMAPS, "kept", "app"),
        obj(CONFIGMAPS, "opted-out", "app", metadata={"labels": {"velero.io/exclude-from-backup": "true"}}),
        obj(CONFIGMAPS, "elsewhere", "other"),
    ]})  # fmt: skip
    names, _ = run(kube, scope({"app"}), [CONFIGMAPS])
    assert names == ["resources/configmaps/namespaces/app/kept.json"]


class BrokenSink(io.BytesIO):
    def write(self, data: Any, /) -> int:
        if self.tell() > 64:
            raise OSError("disk full")
        return super().write(data)


def test_a_tarball_that_cannot_be_written_fails_the_run_without_hanging() -> None:
    payload = "x" * 200_000
    kube = FakeKube(
        {"configmaps": [obj(CONFIGMAPS, f"c{i}", "app", data={"v": payload}) for i in range(40)]}, page_size=2
    )

    async def go() -> None:
        with BackupWriter(BrokenSink()) as writer:
            collector = Collector(
                kube, writer, scope({"app"}), Results(), RunLog(LogWriter(io.BytesIO()), {}), page_size=2
            )  # type: ignore[arg-type]
            await asyncio.wait_for(collector.run([CONFIGMAPS]), timeout=20)

    with pytest.raises(ArchiveError, match="disk full"):
        asyncio.run(go())
