"""etcd snapshots on a real 3-member etcd 3.5: save while writers run, status, verify, list, prune, locations."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.cloudkit import CloudLocation, azure_server, cloud, gcs_server
from tests.integration.etcdcli import after_second_of, digest, flags, into_next_second, ok, strongroom
from tests.integration.etcdkit import EtcdCluster, start_cluster
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server

from strongroom.sandbox.etcdproc import etcd_bin_dir

__all__ = ["azure_server", "cloud", "gcs_server"]  # fixtures

pytestmark = pytest.mark.integration

NAME_RE = re.compile(r"^snapshot_\d{4}-\d{2}-\d{2}_\d{6}\.db$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with start_cluster(tmp_path_factory.mktemp("etcd"), 3) as running:
        for index in range(300):
            running.put(f"/registry/configmaps/seed/item-{index:04d}", "x" * 2048)
        yield running


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STRONGROOM_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "config"


def etcdutl_status(path: Path) -> dict[str, int]:
    out = subprocess.run(
        [str(etcd_bin_dir() / "etcdutl"), "snapshot", "status", str(path), "-w", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


class Writers:
    """Keeps writing while a snapshot streams, so the snapshot is taken of a busy cluster."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.cluster.put(f"/registry/events/busy/e-{self.written}", "y" * 512)
            self.written += 1

    def __enter__(self) -> Writers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_save_while_writers_run_streams_a_checked_snapshot_named_like_cluster_backup(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    with Writers(cluster) as writers:
        while writers.written < 20:
            time.sleep(0.05)
        saved = ok("etcd", "snapshot", "save", "--to", str(backups), *flags(cluster), "-o", "json").json()
    assert writers.written > 20
    assert NAME_RE.match(saved["name"])
    snapshot = backups / saved["name"]
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert snapshot.stat().st_size == saved["size"]
    # What was printed and stored is what etcdutl reads from the file.
    theirs = etcdutl_status(snapshot)
    assert saved["status"] == {k: theirs[k] for k in ("hash", "revision", "totalKey", "totalSize")}
    record = json.loads((backups / saved["name"].replace(".db", ".json")).read_text())
    assert record["status"] == saved["status"]
    assert record["sha256"] == snapshot.read_bytes()[-32:].hex()
    assert record["source"]["endpoint"] in cluster.endpoints
    status = ok("etcd", "snapshot", "status", str(snapshot), "-o", "json").json()
    assert {k: status[k] for k in ("hash", "revision", "totalKey", "totalSize")} == saved["status"]


def test_verify_records_success_and_refuses_a_flipped_byte_or_a_truncated_file(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    name = ok("etcd", "snapshot", "save", "--to", str(backups), *flags(cluster), "-o", "json").json()["name"]
    snapshot = backups / name
    verified = ok("etcd", "snapshot", "verify", "latest", "--dir", str(backups), "-o", "json").json()
    assert verified["ok"] is True
    assert set(verified["checks"]) >= {"hash", "bbolt", "restore"}
    listed = ok("etcd", "snapshot", "list", "--dir", str(backups), "-o", "json").json()
    assert [(s["name"], s["verification"]["ok"]) for s in listed] == [(name, True)]
    # Write once: a second verification adds its own file, and the newest is the one listed.
    again = ok("etcd", "snapshot", "verify", name, "--dir", str(backups), "-o", "json").json()
    assert len(list(backups.glob(name.replace(".db", ".verified-*.json")))) == 2
    listed = ok("etcd", "snapshot", "list", "--dir", str(backups), "-o", "json").json()
    assert listed[0]["verification"]["verifiedAt"] == again["verifiedAt"]

    before = digest(snapshot)
    data = bytearray(snapshot.read_bytes())
    flipped = tmp_path / "flipped.db"
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    result = strongroom("etcd", "snapshot", "verify", str(flipped))
    assert result.code != 0
    assert "does not match the SHA-256" in result.stderr
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(snapshot.read_bytes()[: len(data) // 3])
    result = strongroom("etcd", "snapshot", "verify", str(truncated))
    assert result.code != 0
    assert "altered or truncated" in result.stderr or "truncated" in result.stderr
    assert strongroom("etcd", "snapshot", "status", str(truncated)).code != 0
    assert digest(snapshot) == before


def test_a_database_copied_from_a_data_directory_needs_skip_hash_check(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    name = ok("etcd", "snapshot", "save", "--to", str(backups), *flags(cluster), "-o", "json").json()["name"]
    bare = tmp_path / "db"
    bare.write_bytes((backups / name).read_bytes()[:-32])
    refused = strongroom("etcd", "snapshot", "verify", str(bare))
    assert refused.code != 0 and "no integrity hash" in refused.stderr
    ok("etcd", "snapshot", "verify", str(bare), "--skip-hash-check")


def test_unreachable_endpoint_and_bad_destination_are_precise_errors(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = strongroom(
        "etcd", "snapshot", "save", "--to", str(tmp_path / "b"), "--endpoints", f"http://127.0.0.1:{port}",
        "--dial-timeout", "2",
    )  # fmt: skip
    assert result.code == 5
    assert f"127.0.0.1:{port}" in result.stderr and "unreachable" in result.stderr
    assert not any((tmp_path / "b").glob("snapshot_*"))
    both = strongroom("etcd", "snapshot", "save", "--to", str(tmp_path), "--storage-location", "x")
    assert both.code == 2 and "one of them" in both.stderr
    missing = strongroom("etcd", "snapshot", "verify", str(tmp_path / "nope.db"))
    assert missing.code == 3


def test_wrong_ca_is_named_and_no_file_is_left(tmp_path: Path) -> None:
    with start_cluster(tmp_path / "tls", 1, tls=True) as secure:
        ok("etcd", "snapshot", "save", "--to", str(tmp_path / "good"), *flags(secure))
        assert secure.tls is not None
        result = strongroom(
            "etcd", "snapshot", "save", "--to", str(tmp_path / "bad"), "--endpoints", secure.endpoints[0],
            "--cacert", str(secure.tls.other_ca), "--cert", str(secure.tls.client_cert),
            "--key", str(secure.tls.client_key), "--dial-timeout", "3",
        )  # fmt: skip
        assert result.code == 5
        assert "TLS" in result.stderr and "--cacert" in result.stderr
        assert not list((tmp_path / "bad").glob("*"))


def static_pod_host(root: Path) -> Path:
    """A control-plane host's static pod manifests and revision directories, under root."""
    manifests = root / "etc/kubernetes/manifests"
    resources = root / "etc/kubernetes/static-pod-resources"
    manifests.mkdir(parents=True)
    for component, revisions in (
        ("kube-apiserver", (6, 7)),
        ("kube-controller-manager", (3,)),
        ("kube-scheduler", (4,)),
        ("etcd", (2,)),
    ):
        for revision in revisions:
            directory = resources / f"{component}-pod-{revision}"
            (directory / "secrets/encryption-config").mkdir(parents=True)
            (directory / "secrets/encryption-config/encryption-config").write_text(
                f"key-{component}-{revision}"
            )
            (directory / f"{component}-pod.yaml").write_text(
                f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {component}\n  labels:\n    revision: '{revision}'\n"
            )
        (manifests / f"{component}-pod.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {component}\n  labels:\n    revision: '{revisions[-1]}'\n"
        )
    return root


CREDENTIALS = f"[default]\naws_access_key_id={ACCESS_KEY_ID}\naws_secret_access_key={SECRET_ACCESS_KEY}\n"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def test_save_to_an_s3_location_with_static_pod_resources_then_list_and_prune(
    cluster: EtcdCluster, moto: MotoServer, tmp_path: Path
) -> None:
    moto.create_bucket("etcd-backups")
    credentials = tmp_path / "credentials"
    credentials.write_text(CREDENTIALS)
    ok(
        "backup-location", "create", "s3", "--provider", "aws", "--bucket", "etcd-backups", "--prefix", "velero",
        "--config", f"region=minio,s3Url={moto.endpoint},s3ForcePathStyle=true,insecureSkipTLSVerify=true",
        "--credential-file", str(credentials),
    )  # fmt: skip
    host = static_pod_host(tmp_path / "host")
    first = ok(
        "etcd", "snapshot", "save", "--storage-location", "s3", "--host-root", str(host), *flags(cluster),
        "-o", "json",
    )  # fmt: skip
    saved = first.json()
    assert "found latest kube-apiserver" in first.stderr and "kube-apiserver-pod-7" in first.stderr
    assert "encrypts Secrets" in first.stderr
    assert saved["staticResources"]["revisions"] == {
        "kube-apiserver": 7,
        "kube-controller-manager": 3,
        "kube-scheduler": 4,
        "etcd": 2,
    }
    keys = {o["Key"] for o in moto.client().list_objects_v2(Bucket="etcd-backups")["Contents"]}
    stem = saved["name"].removesuffix(".db")
    prefix = "velero/plugins/strongroom/etcd/"
    assert {
        f"{prefix}{saved['name']}",
        f"{prefix}{stem}.json",
        f"{prefix}static_kuberesources_{stem[9:]}.tar.gz",
    } <= keys
    # The secret key never reaches what was printed or stored.
    assert SECRET_ACCESS_KEY not in first.stdout + first.stderr
    after_second_of(saved["name"])  # snapshot names have a one-second resolution
    ok("etcd", "snapshot", "save", "--storage-location", "s3", "--no-static-pod-resources", *flags(cluster))
    ok("etcd", "snapshot", "verify", saved["name"], "--storage-location", "s3")
    into_next_second()
    newest = ok(
        "etcd", "snapshot", "save", "--storage-location", "s3", "--no-static-pod-resources", *flags(cluster),
        "-o", "json",
    ).json()["name"]  # fmt: skip
    listed = ok("etcd", "snapshot", "list", "--storage-location", "s3", "-o", "json").json()
    assert len(listed) == 3 and listed[0]["name"] == newest
    plan = ok("etcd", "snapshot", "prune", "--storage-location", "s3", "--keep-last", "1", "--dry-run")
    assert plan.stdout.count("would delete") == 1  # the oldest is the newest verified: kept
    assert len(ok("etcd", "snapshot", "list", "--storage-location", "s3", "-o", "json").json()) == 3
    ok("etcd", "snapshot", "prune", "--storage-location", "s3", "--keep-last", "1")
    remaining = [
        s["name"] for s in ok("etcd", "snapshot", "list", "--storage-location", "s3", "-o", "json").json()
    ]
    assert remaining == [newest, saved["name"]]


def test_save_verify_and_list_in_azure_and_gcs_locations(
    cluster: EtcdCluster, cloud: CloudLocation, tmp_path: Path
) -> None:
    ok("backup-location", "create", "cloud", *cloud.cli_args(tmp_path), "--prefix", "velero")
    saved = ok(
        "etcd", "snapshot", "save", "--storage-location", "cloud", "--no-static-pod-resources", *flags(cluster),
        "-o", "json",
    )  # fmt: skip
    name = saved.json()["name"]
    stored = cloud.read(f"velero/plugins/strongroom/etcd/{name}")
    # What etcd sent, its trailer included: the sha256 of the database, checked while it streamed up.
    database, trailer = stored[:-32], stored[-32:]
    assert hashlib.sha256(database).hexdigest() == trailer.hex() == saved.json()["sha256"]
    ok("etcd", "snapshot", "verify", name, "--storage-location", "cloud")
    (listed,) = ok("etcd", "snapshot", "list", "--storage-location", "cloud", "-o", "json").json()
    assert listed["name"] == name
    assert not any(secret in saved.stdout + saved.stderr for secret in cloud.secrets)


def test_static_pod_resources_can_be_kept_apart_from_the_snapshot(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    host = static_pod_host(tmp_path / "host")
    secrets_dir = tmp_path / "apart"
    result = ok(
        "etcd", "snapshot", "save", "--to", str(tmp_path / "snaps"), "--host-root", str(host),
        "--static-resources-to", str(secrets_dir), *flags(cluster), "-o", "json",
    ).json()  # fmt: skip
    assert not list((tmp_path / "snaps").glob("static_kuberesources_*"))
    archives = list(secrets_dir.glob("static_kuberesources_*.tar.gz"))
    assert len(archives) == 1 and stat.S_IMODE(archives[0].stat().st_mode) == 0o600
    assert result["staticResources"]["storedIn"] == f"directory {secrets_dir}"
    assert os.path.getsize(archives[0]) == result["staticResources"]["size"]
