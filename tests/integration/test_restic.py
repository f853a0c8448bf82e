"""File-system backup with the real restic: repositories created on demand, recreated when emptied, and the data.

The repositories live in a local directory location and in moto's S3 server;
their password Secret and BackupRepository resources live in the session's
sandbox, as the node agent keeps them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Sandbox
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.integration.sandboxapi import eventually, unique
from tests.integration.serverkit import install_crds
from tests.runasync import run_async

from strongroom.errors import NotFoundError, UsageError
from strongroom.kube import KubeClient
from strongroom.storage.credentials import AwsCredentials
from strongroom.volumes import (
    PASSWORD_SECRET,
    Repositories,
    RepositoryLocation,
    RepositoryResources,
    Restic,
    ResticError,
    ResticTarget,
    back_up_volume,
    restore_volume,
)

pytestmark = pytest.mark.integration

TAGS = {"backup": "b1", "ns": "app", "pod": "web-0", "pod-uid": "pod-1", "volume": "data", "pvc-uid": "pvc-1"}


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    install_crds(sandbox)


@pytest.fixture(scope="module")
def shared(sandbox: Sandbox, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One repository (and its password Secret) for the tests that need no fresh one: each restic call costs a key derivation."""
    namespace = unique("restic")
    sandbox.kubectl("create", "namespace", namespace)
    directory = tmp_path_factory.mktemp("shared-restic")
    try:
        yield Shared(namespace, local_location(directory / "bucket"), directory / "scratch", directory)
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false")


@dataclass
class Shared:
    namespace: str
    location: RepositoryLocation
    scratch: Path
    directory: Path

    @property
    def repo_dir(self) -> Path:
        return Path(self.location.bucket) / "velero" / "restic" / "app"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-restic")) as server:
        yield server


def local_location(directory: Path) -> RepositoryLocation:
    directory.mkdir(parents=True, exist_ok=True)
    return RepositoryLocation(name="default", provider="local", bucket=str(directory), prefix="velero")


def s3_location(moto: MotoServer) -> RepositoryLocation:
    bucket = unique("restic")
    moto.create_bucket(bucket)
    return RepositoryLocation(
        name="s3-location",
        provider="aws",
        bucket=bucket,
        prefix="velero",
        config={"s3Url": moto.endpoint, "region": "us-east-1", "s3ForcePathStyle": "true"},
        credentials=AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
    )


@asynccontextmanager
async def repositories(sandbox: Sandbox, namespace: str, scratch: Path) -> AsyncIterator[Repositories]:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        discovery = await kube.discover()
        resources = RepositoryResources(
            repositories=discovery.find("velero.io", "backuprepositories"),  # type: ignore[arg-type]
            secrets=discovery.find("", "secrets"),  # type: ignore[arg-type]
        )
        yield Repositories(
            kube, resources, namespace, scratch_dir=scratch, environment={"PATH": os.environ["PATH"]}
        )


def make_tree(root: Path) -> None:
    """Files with several modes, nested directories, a symlink and a binary file."""
    (root / "conf" / "nested" / "deeper").mkdir(parents=True)
    (root / "conf" / "app.ini").write_text("[main]\nkey=value\n")
    (root / "conf" / "nested" / "deeper" / "leaf.txt").write_text("leaf")
    secret = root / "conf" / "private.key"
    secret.write_bytes(b"not really a key")
    secret.chmod(0o600)
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (root / "blob.bin").write_bytes(os.urandom(256 * 1024))
    os.symlink("conf/app.ini", root / "current.ini")
    (root / "empty-dir").mkdir()


def fingerprint(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry's kind, mode, owner and content (or link target), by relative path."""
    found: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            found[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            found[relative] = ("dir", stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[relative] = (
                "file",
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                digest,
                info.st_mtime_ns,
            )
    return found


def get_json(sandbox: Sandbox, *args: str) -> Any:
    return sandbox.kubectl_json("get", *args)


def tags(pvc: str, **extra: str) -> dict[str, str]:
    return {**TAGS, "pvc-uid": pvc, **extra}


@pytest.mark.parametrize("store", ["local", "s3"])
@run_async
async def test_first_backup_creates_the_repository_and_restores_byte_identical(
    store: str, sandbox: Sandbox, crds: None, namespace: str, moto: MotoServer, tmp_path: Path
) -> None:
    location = local_location(tmp_path / "bucket") if store == "local" else s3_location(moto)
    volume = tmp_path / "volume"
    make_tree(volume)
    backup_progress: list[tuple[int, int]] = []
    restore_progress: list[tuple[int, int]] = []
    async with repositories(sandbox, namespace, tmp_path / "scratch") as repos:
        result = await back_up_volume(
            repos, location, "app", volume, TAGS, progress=lambda d, t: backup_progress.append((d, t))
        )
        assert result.snapshot_id
        target = tmp_path / "restored"
        size = await restore_volume(
            repos,
            location,
            "app",
            result.snapshot_id,
            target,
            progress=lambda d, t: restore_progress.append((d, t)),
        )
        password = await repos.passwords.get(location.name)
        assert password is not None
        (snapshot,) = await repos.restic(location, "app", password).snapshots({"pvc-uid": "pvc-1"})
    assert fingerprint(target) == fingerprint(volume)
    assert result.total_bytes > 256 * 1024
    assert size == result.total_bytes
    assert backup_progress[-1] == (result.total_bytes, result.total_bytes)
    assert restore_progress[0] == (0, result.total_bytes)
    assert restore_progress[-1] == (result.total_bytes, result.total_bytes)
    assert snapshot.short_id == result.snapshot_id
    assert snapshot.hostname == "velero"
    assert snapshot.tags == TAGS

    secret = get_json(sandbox, "secret", PASSWORD_SECRET, "-n", namespace)
    assert base64.b64decode(secret["data"][location.name]).decode() == password
    assert len(password) >= 43  # 32 random bytes, urlsafe base64
    (record,) = get_json(sandbox, "backuprepositories", "-n", namespace)["items"]
    assert record["metadata"]["name"].startswith(f"app-{location.name}-restic-")
    assert record["metadata"]["labels"] == {
        "velero.io/volume-namespace": "app",
        "velero.io/storage-location": location.name,
        "velero.io/repository-type": "restic",
    }
    assert record["spec"]["resticIdentifier"] == location.repository_url("app")
    assert record["status"]["phase"] == "Ready"


@run_async
async def test_second_backup_is_incremental_and_adds_only_the_changed_data(
    sandbox: Sandbox, shared: Shared, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (volume / "small.txt").write_text("version 1")
    async with repositories(sandbox, shared.namespace, shared.scratch) as repos:
        first = await back_up_volume(repos, shared.location, "app", volume, tags("incremental"))
        (volume / "small.txt").write_text("version 2, a little longer")
        second = await back_up_volume(repos, shared.location, "app", volume, tags("incremental", backup="b2"))
    assert first.incremental_bytes > 2 * 1024 * 1024
    assert 0 < second.incremental_bytes < 64 * 1024
    assert second.total_bytes == first.total_bytes + len("version 2, a little longer") - len("version 1")
    assert second.snapshot_id != first.snapshot_id


@run_async
async def test_empty_volume_completes_without_a_snapshot(
    sandbox: Sandbox, shared: Shared, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    async with repositories(sandbox, shared.namespace, shared.scratch) as repos:
        result = await back_up_volume(repos, shared.location, "app", volume, tags("empty"))
        restic = await repos.ensure_repository(shared.location, "app")
        assert await restic.snapshots({"pvc-uid": "empty"}) == []
    assert result.snapshot_id is None
    assert result.total_bytes == 0


@run_async
async def test_wrong_password_is_a_clear_error_that_never_shows_the_password(
    sandbox: Sandbox, shared: Shared, tmp_path: Path
) -> None:
    async with repositories(sandbox, shared.namespace, shared.scratch) as repos:
        await repos.ensure_repository(shared.location, "app")
    wrong = "wrong-password-that-must-not-be-shown"
    restic = Restic(
        ResticTarget(url=shared.location.repository_url("app"), password=wrong), cache_dir=tmp_path / "cache"
    )
    with pytest.raises(ResticError) as raised:
        await restic.snapshots()
    assert "wrong password" in raised.value.message
    assert wrong not in str(raised.value)
    assert raised.value.hint is not None and PASSWORD_SECRET in raised.value.hint


@run_async
async def test_existing_repository_without_its_password_here_says_how_to_fix_it(
    sandbox: Sandbox, crds: None, namespace: str, tmp_path: Path
) -> None:
    location = local_location(tmp_path / "bucket")
    async with repositories(sandbox, namespace, tmp_path / "scratch") as repos:
        await repos.ensure_repository(location, "app")
        # Another cluster reading the same bucket: no password Secret there.
        sandbox.kubectl("delete", "secret", PASSWORD_SECRET, "-n", namespace)
        with pytest.raises(UsageError) as raised:
            await back_up_volume(repos, location, "app", tmp_path, TAGS)
    assert "exists, but this cluster has no password for it" in raised.value.message
    assert raised.value.hint is not None and f"copy the Secret {PASSWORD_SECRET}" in raised.value.hint
    (record,) = get_json(sandbox, "backuprepositories", "-n", namespace)["items"]
    assert record["status"]["phase"] == "NotReady"
    assert "no password" in record["status"]["message"]
    # The repository was left as it was: no second one initialised over it.
    assert len(list((tmp_path / "bucket" / "velero" / "restic" / "app" / "keys").iterdir())) == 1


@run_async
async def test_restore_from_a_missing_repository_fails_without_creating_one(
    sandbox: Sandbox, crds: None, namespace: str, tmp_path: Path
) -> None:
    location = local_location(tmp_path / "bucket")
    async with repositories(sandbox, namespace, tmp_path / "scratch") as repos:
        with pytest.raises(NotFoundError, match="there is no restic repository"):
            await restore_volume(repos, location, "app", "abcdef12", tmp_path / "target")
    assert not (tmp_path / "bucket" / "velero" / "restic").exists()


@run_async
async def test_emptied_bucket_gets_a_new_repository_at_the_next_backup(
    sandbox: Sandbox, crds: None, namespace: str, moto: MotoServer, tmp_path: Path
) -> None:
    location = s3_location(moto)
    volume = tmp_path / "volume"
    make_tree(volume)
    client = moto.client()
    async with repositories(sandbox, namespace, tmp_path / "scratch") as repos:
        await repos.ensure_repository(location, "app")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=location.bucket)["Contents"]]
        assert "velero/restic/app/config" in keys
        for key in keys:
            client.delete_object(Bucket=location.bucket, Key=key)
        # The BackupRepository still says Ready, but the bucket has nothing.
        result = await back_up_volume(repos, location, "app", volume, TAGS)
    assert result.snapshot_id
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=location.bucket)["Contents"]]
    assert "velero/restic/app/config" in keys
    assert any(key.startswith(f"velero/restic/app/snapshots/{result.snapshot_id}") for key in keys)
    (record,) = get_json(sandbox, "backuprepositories", "-n", namespace)["items"]
    assert record["status"]["phase"] == "Ready"


def lock_files(locks: Path) -> list[Path]:
    """The complete lock files (restic writes a temporary file first, then renames it)."""
    if not locks.is_dir():
        return []
    return [path for path in locks.iterdir() if len(path.name) == 64 and "-" not in path.name]


def killed_restic_holding_an_exclusive_lock(url: str, password: str, locks: Path) -> None:
    """A restic killed by SIGKILL while it holds the repository alone (as when its pod is OOM-killed).

    ``key passwd`` locks the repository exclusively, then waits for the new
    password on stdin: it is killed there, and its lock stays behind.
    """
    env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "HOME": str(locks.parent)}
    process = subprocess.Popen(
        ["restic", "key", "passwd", "--repo", url, "--no-cache"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        eventually(lambda: lock_files(locks), timeout=20)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)  # reaped: a zombie would still look alive to restic
        assert process.stdin is not None
        process.stdin.close()


@run_async
async def test_stale_exclusive_lock_of_a_killed_restic_does_not_block_the_next_backup(
    sandbox: Sandbox, shared: Shared, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "file").write_text("data")
    async with repositories(sandbox, shared.namespace, shared.scratch) as repos:
        await repos.ensure_repository(shared.location, "app")
        password = await repos.passwords.get(shared.location.name)
        assert password is not None
        url = shared.location.repository_url("app")
        killed_restic_holding_an_exclusive_lock(url, password, shared.repo_dir / "locks")
        # Without the unlock, restic refuses: "repository is already locked exclusively".
        with pytest.raises(ResticError, match="locked exclusively"):
            await repos.restic(shared.location, "app", password).backup(volume, tags=tags("lock"))
        result = await back_up_volume(repos, shared.location, "app", volume, tags("lock"))
    assert result.snapshot_id
    assert list((shared.repo_dir / "locks").iterdir()) == []


def data_bytes(repo_dir: Path) -> int:
    return sum(p.stat().st_size for p in (repo_dir / "data").rglob("*") if p.is_file())


@run_async
async def test_forget_and_prune_remove_the_data_of_deleted_snapshots(
    sandbox: Sandbox, shared: Shared, tmp_path: Path
) -> None:
    keep, drop = tmp_path / "keep", tmp_path / "drop"
    for directory, size in ((keep, 64 * 1024), (drop, 1024 * 1024)):
        directory.mkdir()
        (directory / "data.bin").write_bytes(os.urandom(size))
    async with repositories(sandbox, shared.namespace, shared.scratch) as repos:
        kept = await back_up_volume(repos, shared.location, "app", keep, tags("keep"))
        dropped = await back_up_volume(repos, shared.location, "app", drop, tags("drop"))
        before = data_bytes(shared.repo_dir)
        assert kept.snapshot_id is not None and dropped.snapshot_id is not None
        await repos.forget_snapshots(shared.location, "app", [dropped.snapshot_id])
    after = data_bytes(shared.repo_dir)
    snapshots = [p.name for p in (shared.repo_dir / "snapshots").iterdir()]
    assert any(name.startswith(kept.snapshot_id) for name in snapshots)
    assert not any(name.startswith(dropped.snapshot_id) for name in snapshots)
    assert before - after >= 1024 * 1024
