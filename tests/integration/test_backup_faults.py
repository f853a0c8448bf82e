"""Backups and restores through an S3 server that fails about one request in ten.

The proxy answers 503 SlowDown and 500, resets connections in the middle of
requests and responses, and stalls past the client's timeout. Whatever it
does, every backup either completes (and then verifies against a healthy
connection) or fails with a reason, and a backup that is incomplete or
corrupt never looks complete. A restore through it either completes or
fails before creating anything.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests import faultproxy
from tests.conftest import Sandbox
from tests.faultproxy import Fault, FaultyS3
from tests.integration.backupkit import delete_namespace, deploy_sample, get, unique

from strongroom.archive import BackupReader
from strongroom.backup.request import BackupFlags, build_backup, plan_backup
from strongroom.backup.runner import BackupOutcome, BackupRunner
from strongroom.kube import KubeClient
from strongroom.restore.request import RestoreFlags, build_restore, restore_options
from strongroom.restore.runner import RestoreOutcome, RestoreRunner
from strongroom.storage import Layout, StoreOptions
from strongroom.storage.catalog import BackupCatalog

pytestmark = pytest.mark.integration

fault_moto = faultproxy.fault_moto
faulty_s3 = faultproxy.faulty_s3

ROUNDS = 8


async def back_up(sandbox: Sandbox, catalog: BackupCatalog, name: str, namespace: str) -> BackupOutcome:
    manifest, ttl = build_backup(BackupFlags(name=name, include_namespaces=[namespace]), "faulty")
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        plan = await plan_backup(kube, manifest)
        return await BackupRunner(kube, catalog).run(manifest, plan.scope, plan.resources, ttl=ttl)


async def restore(sandbox: Sandbox, catalog: BackupCatalog, name: str, backup: str) -> RestoreOutcome:
    manifest = build_restore(RestoreFlags(name=name, from_backup=backup), datetime.now(UTC))
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        discovery = await kube.discover()
        options = restore_options(discovery, manifest, [])
        return await RestoreRunner(kube, catalog).run(manifest, options, discovery=discovery)


async def check_stored(healthy: BackupCatalog, name: str, outcome: BackupOutcome) -> str:
    """What a healthy reader sees of one backup: consistent with what the run reported."""
    visible = await healthy.backup_exists(name)
    if outcome.phase == "Completed":
        assert outcome.stored and visible
        report = await healthy.verify_backup(name)
        assert report.ok, report.to_json()
        tarball = await healthy.read_file(healthy.layout.backup_contents(name))
        summary = BackupReader(io.BytesIO(tarball)).verify(
            expected_sha256=report.checked[f"{name}.tar.gz"].sha256
        )
        assert summary.item_entries > 10
        return "completed"
    # Not completed: a reason is given, and it is never visible as complete.
    assert outcome.phase == "Failed", outcome.backup["status"]
    assert outcome.backup["status"].get("failureReason")
    if visible:
        stored: dict[str, Any] = await healthy.read_backup_metadata(name)
        assert stored["status"]["phase"] == "Failed"
    return "failed"


def test_backups_through_a_faulty_store_complete_or_fail_visibly(
    sandbox: Sandbox, faulty_s3: FaultyS3
) -> None:
    namespace = unique("flaky")
    group = f"{namespace}.example.com"
    deploy_sample(sandbox, namespace, group)
    faulty = BackupCatalog(faulty_s3.open_store("velero"), Layout())
    healthy = BackupCatalog(faulty_s3.direct_store("velero"), Layout())

    async def rounds() -> list[str]:
        verdicts = []
        for number in range(ROUNDS):
            name = f"flaky-{number}"
            outcome = await back_up(sandbox, faulty, name, namespace)
            verdicts.append(await check_stored(healthy, name, outcome))
        return verdicts

    try:
        verdicts = asyncio.run(rounds())
        injected = faulty_s3.proxy.injected
        assert sum(injected.values()) >= ROUNDS, injected
        assert len([kind for kind, count in injected.items() if count]) >= 3, injected
        # Retries carry nearly every backup through; every one is accounted for either way.
        assert verdicts.count("completed") >= ROUNDS // 2, verdicts
        listed = asyncio.run(healthy.backup_names())
        assert set(listed) >= {f"flaky-{n}" for n, verdict in enumerate(verdicts) if verdict == "completed"}

        # A restore through the same faults completes, or fails before creating anything.
        completed = next(f"flaky-{n}" for n, verdict in enumerate(verdicts) if verdict == "completed")
        delete_namespace(sandbox, namespace)
        outcome = asyncio.run(restore(sandbox, faulty, "flaky-restore", completed))
        if outcome.phase == "Completed":
            assert get(sandbox, "configmap", "web-config", "-n", namespace) is not None
        else:
            assert outcome.phase == "Failed" and outcome.restore["status"]["failureReason"]
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--ignore-not-found", "--wait=false")


def test_a_store_that_fails_everything_gives_a_failed_backup_and_nothing_visible(
    sandbox: Sandbox, faulty_s3: FaultyS3
) -> None:
    namespace = unique("down")
    sandbox.kubectl("create", "namespace", namespace)
    sandbox.kubectl("create", "configmap", "c1", "-n", namespace, "--from-literal=a=b")
    faulty_s3.proxy.kinds = (Fault.SLOW_DOWN, Fault.INTERNAL_ERROR, Fault.RESET_REQUEST)
    faulty_s3.proxy.fail_everything()
    faulty = BackupCatalog(faulty_s3.open_store("velero", options=_quick()), Layout())
    healthy = BackupCatalog(faulty_s3.direct_store("velero"), Layout())
    try:
        outcome = asyncio.run(back_up(sandbox, faulty, "down-1", namespace))
        assert outcome.phase == "Failed" and not outcome.stored
        assert "storing the backup failed" in outcome.backup["status"]["failureReason"]
        assert asyncio.run(healthy.backup_names()) == []
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false")


def _quick() -> StoreOptions:
    return replace(faultproxy.FAULT_TEST_OPTIONS, max_retries=1, retry_timeout=timedelta(seconds=2))
