"""Static pod resources: which revisions a backup takes, the archive cluster-restore.sh reads, safe restores."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from strongroom.errors import NotFoundError, UsageError
from strongroom.etcd.staticpods import (
    COMPONENTS,
    ResourceDir,
    archive_stream,
    check_archive,
    extract_archive,
    find_latest_resources,
    iter_archive,
    restore_resources,
    write_archive,
)

MTIME = 1_624_647_639


def manifest(component: str, revision: int | None, *, volume_revision: int | None = None) -> str:
    labels = {"app": component}
    if revision is not None:
        labels["revision"] = str(revision)
    volumes = [
        {"name": "cert-dir", "hostPath": {"path": f"/etc/kubernetes/static-pod-resources/{component}-certs"}}
    ]
    if volume_revision is not None:
        path = f"/etc/kubernetes/static-pod-resources/{component}-pod-{volume_revision}"
        volumes.append({"name": "resource-dir", "hostPath": {"path": path}})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": component, "namespace": f"openshift-{component}", "labels": labels},
        "spec": {"containers": [{"name": component, "image": "x"}], "volumes": volumes},
    }
    return yaml.safe_dump(pod)


def revision_dir(resources: Path, component: str, revision: int) -> Path:
    """A resource directory like OpenShift's: configmaps, a 0600 secret, a manifest, a symlink."""
    root = resources / f"{component}-pod-{revision}"
    config = root / "configmaps" / "config"
    config.mkdir(parents=True)
    (config / "config.yaml").write_text(f"revision: {revision}\n")
    secret = root / "secrets" / "encryption-config"
    secret.mkdir(parents=True)
    (secret / "encryption-config").write_bytes(os.urandom(64))
    (secret / "encryption-config").chmod(0o600)
    secret.chmod(0o700)
    (root / f"{component}-pod.yaml").write_text(manifest(component, revision))
    (root / "current-config").symlink_to("configmaps/config/config.yaml")
    for path in [*root.rglob("*"), root]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return root


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A control-plane host root: live manifests and several revisions of each component."""
    root = tmp_path / "host"
    resources = root / "etc/kubernetes/static-pod-resources"
    manifests = root / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    resources.mkdir(parents=True)
    revisions = {
        "kube-apiserver": (2, 9, 10),
        "kube-controller-manager": (7,),
        "kube-scheduler": (6,),
        "etcd": (3,),
    }
    for component, numbers in revisions.items():
        for number in numbers:
            revision_dir(resources, component, number)
        (manifests / f"{component}-pod.yaml").write_text(manifest(component, max(numbers)))
        (resources / f"{component}-certs").mkdir()
    # Names the revision glob of cluster-backup.sh would also match; never a revision.
    (resources / "kube-apiserver-pod-10.before-restore-20240101-000000").mkdir()
    (resources / "kube-apiserver-pod-11").write_text("a file, not a directory")
    # A bigger file, so that the archive streams in several chunks.
    (resources / "kube-apiserver-pod-10" / "configmaps" / "big").write_bytes(os.urandom(300_000))
    return root


def base(host: Path) -> Path:
    return host / "etc/kubernetes"


def archive_bytes(dirs: list[ResourceDir], host: Path, chunk_size: int = 1 << 20) -> bytes:
    return b"".join(iter_archive(dirs, base(host), chunk_size=chunk_size))


def tree(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Everything under root: relative path -> (mode, content / link target)."""
    out: dict[str, tuple[int, bytes | str | None]] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content: bytes | str | None = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        else:
            content = None
        out[str(path.relative_to(root))] = (st.st_mode, content)
    return out


# -- which revisions -----------------------------------------------------------


def test_newest_revision_of_each_component_is_chosen_by_number(host: Path) -> None:
    found = find_latest_resources(host)

    assert [d.component for d in found] == list(COMPONENTS)
    by_component = {d.component: d for d in found}
    apiserver = by_component["kube-apiserver"]
    assert apiserver.revision == 10  # not 9, which sorts after "10" by name
    assert apiserver.relative == "static-pod-resources/kube-apiserver-pod-10"
    assert apiserver.path == host / "etc/kubernetes/static-pod-resources/kube-apiserver-pod-10"
    assert apiserver.path.is_absolute()
    assert apiserver.live_revision == 10
    assert apiserver.note is None
    assert [d.relative for d in found[1:]] == [
        "static-pod-resources/kube-controller-manager-pod-7",
        "static-pod-resources/kube-scheduler-pod-6",
        "static-pod-resources/etcd-pod-3",
    ]


def test_a_rollout_in_progress_is_noted(host: Path) -> None:
    (host / "etc/kubernetes/manifests/kube-apiserver-pod.yaml").write_text(manifest("kube-apiserver", 9))

    apiserver = find_latest_resources(host)[0]

    assert apiserver.revision == 10
    assert apiserver.live_revision == 9
    assert apiserver.note is not None
    assert "rollout" in apiserver.note
    assert "9" in apiserver.note
    assert "10" in apiserver.note


def test_live_revision_falls_back_to_the_manifests_resource_volume(host: Path) -> None:
    path = host / "etc/kubernetes/manifests/kube-scheduler-pod.yaml"
    path.write_text(manifest("kube-scheduler", None, volume_revision=5))
    (host / "etc/kubernetes/static-pod-resources/kube-scheduler-pod-5").mkdir()

    scheduler = next(d for d in find_latest_resources(host) if d.component == "kube-scheduler")

    assert scheduler.live_revision == 5
    assert scheduler.revision == 6
    assert scheduler.note is not None
    assert "rollout" in scheduler.note


def test_a_stopped_static_pod_is_noted(host: Path) -> None:
    (host / "etc/kubernetes/manifests/etcd-pod.yaml").unlink()

    etcd = find_latest_resources(host)[-1]

    assert etcd.revision == 3
    assert etcd.live_revision is None
    assert etcd.note is not None
    assert "etcd-pod.yaml" in etcd.note


def test_a_component_without_resources_is_not_found(host: Path) -> None:
    resources = host / "etc/kubernetes/static-pod-resources"
    shutil.rmtree(resources / "kube-scheduler-pod-6")

    with pytest.raises(NotFoundError) as info:
        find_latest_resources(host)

    assert "kube-scheduler" in info.value.message
    assert str(resources) in info.value.message
    assert info.value.hint


def test_no_resources_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        find_latest_resources(tmp_path)
    assert "static-pod-resources" in info.value.message
    assert info.value.hint


def test_resources_directory_can_be_named(host: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "copy" / "static-pod-resources"
    shutil.copytree(host / "etc/kubernetes/static-pod-resources", elsewhere, symlinks=True)

    found = find_latest_resources(host, resources_dir=elsewhere)

    assert found[0].path == elsewhere / "kube-apiserver-pod-10"
    assert found[0].relative == "static-pod-resources/kube-apiserver-pod-10"
    assert found[0].live_revision == 10


# -- the archive -----------------------------------------------------------------


def test_archive_holds_the_paths_cluster_backup_sh_stores(host: Path) -> None:
    dirs = find_latest_resources(host)

    with tarfile.open(fileobj=io.BytesIO(archive_bytes(dirs, host)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}

    names = set(members)
    for d in dirs:
        assert d.relative in names
        assert f"{d.relative}/configmaps/config/config.yaml" in names
    assert all(name.startswith("static-pod-resources/") for name in names)
    assert "static-pod-resources/kube-apiserver-pod-9" not in names
    assert not any("certs" in name or "before-restore" in name for name in names)
    secret = members["static-pod-resources/kube-apiserver-pod-10/secrets/encryption-config/encryption-config"]
    assert secret.isreg()
    assert secret.mode == 0o600
    assert members["static-pod-resources/kube-apiserver-pod-10/secrets/encryption-config"].mode == 0o700
    link = members["static-pod-resources/etcd-pod-3/current-config"]
    assert link.issym()
    assert link.linkname == "configmaps/config/config.yaml"
    assert members["static-pod-resources/etcd-pod-3"].isdir()
    assert members["static-pod-resources/etcd-pod-3"].mtime == MTIME


def test_archive_streams_in_chunks_and_the_async_stream_is_the_same(host: Path) -> None:
    dirs = find_latest_resources(host)
    chunks = list(iter_archive(dirs, base(host), chunk_size=16_384))

    async def collect() -> list[bytes]:
        return [chunk async for chunk in archive_stream(dirs, base(host), chunk_size=16_384)]

    streamed = asyncio.run(collect())

    assert len(chunks) > 10
    assert {len(c) for c in chunks[:-1]} == {16_384}
    assert b"".join(streamed) == b"".join(chunks)
    decompressed = gzip.decompress(b"".join(chunks))
    assert len(decompressed) % tarfile.RECORDSIZE == 0


def test_system_tar_extracts_static_pod_resources_as_cluster_restore_sh_does(
    host: Path, tmp_path: Path
) -> None:
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("no tar on this machine")
    archive = tmp_path / "static_kuberesources_2021-06-25_190035.tar.gz"
    write_archive(find_latest_resources(host), base(host), archive)
    target = tmp_path / "target"
    target.mkdir()

    subprocess.run([tar, "-C", str(target), "-xzf", str(archive), "static-pod-resources"], check=True)

    source = host / "etc/kubernetes/static-pod-resources/kube-apiserver-pod-10"
    assert tree(target / "static-pod-resources/kube-apiserver-pod-10") == tree(source)


def test_write_archive_is_private_and_leaves_no_temporary_file(host: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup" / "static_kuberesources_x.tar.gz"
    dest.parent.mkdir()

    size = write_archive(find_latest_resources(host), base(host), dest)

    assert size == dest.stat().st_size
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert os.listdir(dest.parent) == [dest.name]
    assert dest.read_bytes() == archive_bytes(find_latest_resources(host), host)


def test_a_copy_outside_the_base_is_archived_under_static_pod_resources(host: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "resources-copy"
    shutil.copytree(host / "etc/kubernetes/static-pod-resources", copy, symlinks=True)
    dirs = find_latest_resources(host, resources_dir=copy)

    with tarfile.open(fileobj=io.BytesIO(archive_bytes(dirs, host)), mode="r:gz") as tar:
        names = tar.getnames()

    assert dirs[0].relative == "static-pod-resources/kube-apiserver-pod-10"
    assert "static-pod-resources/kube-apiserver-pod-10/configmaps/config/config.yaml" in names
    assert all(name.startswith("static-pod-resources/") for name in names)


# -- restoring -------------------------------------------------------------------


@pytest.fixture
def archive(host: Path, tmp_path: Path) -> Path:
    path = tmp_path / "static_kuberesources.tar.gz"
    write_archive(find_latest_resources(host), base(host), path)
    return path


def test_extract_round_trip_restores_bytes_modes_and_links(host: Path, archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "recovery-host"

    restored = extract_archive(archive, target)

    assert restored == [d.relative for d in find_latest_resources(host)]
    for relative in restored:
        assert tree(target / "etc/kubernetes" / relative) == tree(host / "etc/kubernetes" / relative)
    secret = (
        target / "etc/kubernetes/static-pod-resources/etcd-pod-3/secrets/encryption-config/encryption-config"
    )
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    link = target / "etc/kubernetes/static-pod-resources/etcd-pod-3/current-config"
    assert link.is_symlink()
    assert link.read_text() == "revision: 3\n"
    assert (target / "etc/kubernetes/static-pod-resources/etcd-pod-3").stat().st_mtime == MTIME
    assert not [
        p for p in (target / "etc/kubernetes/static-pod-resources").iterdir() if p.name.startswith(".")
    ]


def test_check_archive_names_what_would_be_restored_and_writes_nothing(archive: Path, tmp_path: Path) -> None:
    before = tree(tmp_path)
    assert check_archive(archive) == [
        "static-pod-resources/kube-apiserver-pod-10",
        "static-pod-resources/kube-controller-manager-pod-7",
        "static-pod-resources/kube-scheduler-pod-6",
        "static-pod-resources/etcd-pod-3",
    ]
    assert tree(tmp_path) == before


def test_restore_keeps_an_identical_directory(host: Path, archive: Path) -> None:
    resources = host / "etc/kubernetes/static-pod-resources"
    before = tree(resources)

    outcomes = restore_resources(archive, host)

    assert {r.outcome for r in outcomes} == {"identical"}
    assert tree(resources) == before


def test_restore_moves_a_differing_directory_aside(host: Path, archive: Path) -> None:
    resources = host / "etc/kubernetes/static-pod-resources"
    changed = resources / "etcd-pod-3/configmaps/config/config.yaml"
    changed.write_text("changed after the backup\n")
    (resources / "etcd-pod-3/extra").write_text("new file")
    kept = tree(resources / "etcd-pod-3")

    outcomes = {r.relative: r for r in restore_resources(archive, host)}

    etcd = outcomes["static-pod-resources/etcd-pod-3"]
    assert etcd.outcome == "replaced"
    assert etcd.moved_aside is not None
    assert etcd.moved_aside.parent.parent == resources.parent
    assert etcd.moved_aside.parent.name.startswith("static-pod-resources-before-restore-")
    assert etcd.moved_aside.name == "etcd-pod-3"
    assert tree(etcd.moved_aside) == kept
    assert changed.read_text() == "revision: 3\n"
    assert not (resources / "etcd-pod-3/extra").exists()
    assert outcomes["static-pod-resources/kube-scheduler-pod-6"].outcome == "identical"
    # The moved-aside directory is never taken for a revision by a later backup.
    assert find_latest_resources(host)[-1].path == resources / "etcd-pod-3"


def malicious(tmp_path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    """A gzip tar with one good member first, then whatever ``add`` puts in."""
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("static-pod-resources/etcd-pod-3/ok")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        add(tar)
    return path


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"x"
) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        if kind == tarfile.REGTYPE:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            tar.addfile(info)

    return add


def both(*adds: Callable[[tarfile.TarFile], None]) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        for one in adds:
            one(tar)

    return add


@pytest.mark.parametrize(
    ("name", "add"),
    [
        ("parent reference", entry("static-pod-resources/../x")),
        ("parent reference at the start", entry("../etc/passwd")),
        ("absolute path", entry("/etc/kubernetes/static-pod-resources/etcd-pod-3/x")),
        (
            "symlink escaping",
            entry("static-pod-resources/etcd-pod-3/l", tarfile.SYMTYPE, "../../../../etc/shadow"),
        ),
        ("absolute symlink", entry("static-pod-resources/etcd-pod-3/l", tarfile.SYMTYPE, "/etc/shadow")),
        (
            "symlink escaping through another symlink",
            both(
                entry("static-pod-resources/etcd-pod-3/up", tarfile.SYMTYPE, ".."),
                entry("static-pod-resources/etcd-pod-3/out", tarfile.SYMTYPE, "up/../x"),
            ),
        ),
        (
            "file beneath a symlink",
            both(
                entry("static-pod-resources/etcd-pod-3/d", tarfile.SYMTYPE, "."),
                entry("static-pod-resources/etcd-pod-3/d/x"),
            ),
        ),
        ("hard link outside", entry("static-pod-resources/etcd-pod-3/h", tarfile.LNKTYPE, "etc/passwd")),
        ("character device", entry("static-pod-resources/etcd-pod-3/null", tarfile.CHRTYPE)),
        ("block device", entry("static-pod-resources/etcd-pod-3/sda", tarfile.BLKTYPE)),
        ("fifo", entry("static-pod-resources/etcd-pod-3/pipe", tarfile.FIFOTYPE)),
        ("duplicate file", entry("static-pod-resources/etcd-pod-3/ok")),
    ],
)
def test_unsafe_archives_are_refused_before_anything_is_written(
    tmp_path: Path, name: str, add: Callable[[tarfile.TarFile], None]
) -> None:
    path = malicious(tmp_path, add)
    target = tmp_path / "target"
    target.mkdir()
    (target / "etc").mkdir()

    with pytest.raises(UsageError) as info:
        extract_archive(path, target)

    assert "nothing was written" in info.value.message
    assert tree(target) == {"etc": (tree(tmp_path)["target/etc"][0], None)}
    with pytest.raises(UsageError):
        check_archive(path)


def test_links_inside_the_tree_are_restored(tmp_path: Path) -> None:
    path = malicious(
        tmp_path,
        both(
            entry("static-pod-resources/etcd-pod-3/sibling", tarfile.SYMTYPE, "../etcd-certs/tls.crt"),
            entry(
                "static-pod-resources/etcd-pod-3/hard", tarfile.LNKTYPE, "static-pod-resources/etcd-pod-3/ok"
            ),
            entry("other/ignored.txt"),
        ),
    )

    restored = extract_archive(path, tmp_path / "target")

    resources = tmp_path / "target/etc/kubernetes/static-pod-resources"
    assert restored == ["static-pod-resources/etcd-pod-3"]
    assert os.readlink(resources / "etcd-pod-3/sibling") == "../etcd-certs/tls.crt"
    assert (resources / "etcd-pod-3/hard").read_bytes() == b"ok"
    assert not (tmp_path / "target/etc/kubernetes/other").exists()


def test_an_archive_without_static_pod_resources_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("etc/file"), io.BytesIO(b""))

    with pytest.raises(UsageError, match="no static pod resources"):
        extract_archive(path, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_a_truncated_archive_is_refused(archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    with pytest.raises(UsageError):
        extract_archive(cut, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_a_missing_archive_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        check_archive(tmp_path / "nope.tar.gz")
