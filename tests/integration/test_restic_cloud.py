"""File-system backup with the real restic into Azure Blob Storage and Google Cloud Storage.

restic 0.14 reaches them only at their public host names, so the emulators
answer there through a TLS-intercepting proxy (``tests/integration/tlsproxy.py``)
whose CA is the location's ``caCert``, as behind a cluster-wide proxy that
inspects TLS. strongroom's own stores go through the same proxy, chosen from
``HTTPS_PROXY``/``NO_PROXY``; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.cloudkit import (
    AZURE_PUBLIC_HOST,
    GCS_PUBLIC_HOST,
    PROVIDERS,
    CloudLocation,
    PublicClouds,
    public_clouds,
)
from tests.integration.serverkit import install_crds
from tests.integration.test_restic import TAGS, fingerprint, make_tree
from tests.runasync import run_async

from strongroom.errors import StorageConfigError
from strongroom.kube import KubeClient
from strongroom.storage import parse_location_credentials
from strongroom.volumes import (
    Repositories,
    RepositoryLocation,
    RepositoryResources,
    back_up_volume,
    restore_volume,
)

__all__ = ["public_clouds"]  # fixture

pytestmark = pytest.mark.integration

PUBLIC_HOST = {"azure": AZURE_PUBLIC_HOST, "gcp": GCS_PUBLIC_HOST}
SCHEME = {"azure": "azure", "gcp": "gs"}


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    install_crds(sandbox)


@pytest.fixture
def through_proxy(public_clouds: PublicClouds, monkeypatch: pytest.MonkeyPatch) -> PublicClouds:
    """This process reaches the clouds through the proxy too (its stores read the environment when built)."""
    for name, value in public_clouds.environment.items():
        monkeypatch.setenv(name, value)
    return public_clouds


def repository_location(cloud: CloudLocation, ca_cert: str, **config: str) -> RepositoryLocation:
    return RepositoryLocation(
        name=f"{cloud.provider}-location",
        provider=cloud.provider,
        bucket=cloud.bucket,
        prefix="velero",
        config={**cloud.config, "caCert": ca_cert, **config},
        credentials=parse_location_credentials(
            cloud.provider, cloud.credentials, cloud.config, source="test"
        ),
    )


@asynccontextmanager
async def repositories(
    sandbox: Sandbox, namespace: str, scratch: Path, clouds: PublicClouds
) -> AsyncIterator[Repositories]:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        discovery = await kube.discover()
        resources = RepositoryResources(
            repositories=discovery.find("velero.io", "backuprepositories"),  # type: ignore[arg-type]
            secrets=discovery.find("", "secrets"),  # type: ignore[arg-type]
        )
        # restic gets the proxy from the agent's environment, as in a pod of a proxied cluster.
        environment = {"PATH": os.environ["PATH"], **clouds.environment}
        yield Repositories(kube, resources, namespace, scratch_dir=scratch, environment=environment)


@pytest.mark.parametrize("provider", PROVIDERS)
@run_async
async def test_volume_round_trip_through_the_clouds_public_endpoints(
    provider: str, sandbox: Sandbox, crds: None, namespace: str, through_proxy: PublicClouds, tmp_path: Path
) -> None:
    cloud = through_proxy.location(provider)
    location = repository_location(cloud, through_proxy.ca_cert)
    volume = tmp_path / "volume"
    make_tree(volume)
    async with repositories(sandbox, namespace, tmp_path / "scratch", through_proxy) as repos:
        first = await back_up_volume(repos, location, "app", volume, TAGS)
        (volume / "conf" / "app.ini").write_text("[main]\nkey=changed\n")
        second = await back_up_volume(repos, location, "app", volume, {**TAGS, "backup": "b2"})
        target = tmp_path / "restored"
        await restore_volume(repos, location, "app", second.snapshot_id, target)
        password = await repos.passwords.get(location.name)
        assert password is not None
        restic = repos.restic(location, "app", password)
        snapshots = await restic.snapshots()
        await repos.forget_snapshots(location, "app", [first.snapshot_id])
        remaining = await restic.snapshots()

    assert fingerprint(target) == fingerprint(volume)
    assert {snapshot.short_id for snapshot in snapshots} == {first.snapshot_id, second.snapshot_id}
    assert [snapshot.short_id for snapshot in remaining] == [second.snapshot_id]
    # The second backup sent only what changed.
    assert 0 < second.incremental_bytes < first.incremental_bytes
    # The repository is where Velero keeps it, addressed as Velero addresses it.
    assert "velero/restic/app/config" in cloud.listing()
    assert restic.url == f"{SCHEME[provider]}:{cloud.bucket}:/velero/restic/app"
    (record,) = sandbox.kubectl_json("get", "backuprepositories", "-n", namespace)["items"]
    assert record["spec"]["resticIdentifier"] == restic.url
    # Everything went to the cloud's public host, through the proxy, and nowhere else.
    assert PUBLIC_HOST[provider] in through_proxy.proxy.tunnels
    assert through_proxy.proxy.refused == []
    assert not any(secret in json.dumps(record) for secret in cloud.secrets)


@pytest.mark.parametrize("provider", PROVIDERS)
@run_async
async def test_a_custom_endpoint_restic_cannot_reach_is_refused_before_anything_is_written(
    provider: str, sandbox: Sandbox, crds: None, namespace: str, through_proxy: PublicClouds, tmp_path: Path
) -> None:
    cloud = through_proxy.location(provider)
    # The emulator's own address: strongroom's store reaches it, restic 0.14 cannot.
    endpoint = (
        {"storageAccountURI": through_proxy.azure.endpoint}
        if provider == "azure"
        else {"storeEndpoint": through_proxy.gcs.endpoint}
    )
    location = repository_location(cloud, through_proxy.ca_cert, **endpoint)
    volume = tmp_path / "volume"
    make_tree(volume)
    async with repositories(sandbox, namespace, tmp_path / "scratch", through_proxy) as repos:
        with pytest.raises(
            StorageConfigError, match="file-system backup \\(restic\\) cannot reach"
        ) as caught:
            await back_up_volume(repos, location, "app", volume, TAGS)
    assert "backups of API objects work" in caught.value.message
    assert not any(key.startswith("velero/restic/") for key in cloud.listing())
