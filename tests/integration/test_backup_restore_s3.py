"""Backup and restore through a real S3 server (moto's), configured as the seed configures MinIO.

The location is created with the command line exactly as an administrator
would (`--provider aws --config region=minio,s3Url=...,s3ForcePathStyle=true`
and an AWS credentials file with a `[backupStorage]` profile); secrets never
appear in anything the command prints or stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, delete_namespace, deploy_sample, get, unique
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server

pytestmark = pytest.mark.integration

CREDENTIALS = f"""[default]
aws_access_key_id=AKIADEFAULTPROFILE01
aws_secret_access_key=not-the-one-in-use

[backupStorage]
aws_access_key_id={ACCESS_KEY_ID}
aws_secret_access_key={SECRET_ACCESS_KEY}
"""


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(sandbox, tmp_path / "config", monkeypatch)


def create_location(cli: Cli, moto: MotoServer, tmp_path: Path, bucket: str, *extra: str) -> None:
    credentials = tmp_path / "credentials-velero"
    credentials.write_text(CREDENTIALS)
    cli.ok(
        "backup-location",
        "create",
        "minio",
        "--provider",
        "aws",
        "--bucket",
        bucket,
        "--prefix",
        "velero",
        "--config",
        f"region=minio,s3Url={moto.endpoint},s3ForcePathStyle=true,insecureSkipTLSVerify=true,profile=backupStorage",
        "--credential-file",
        str(credentials),
        "--default",
        *extra,
    )


def test_round_trip_through_s3(cli: Cli, sandbox: Sandbox, moto: MotoServer, tmp_path: Path) -> None:
    namespace = unique("s3app")
    group = f"{namespace}.example.com"
    bucket = unique("bucket")
    moto.create_bucket(bucket)
    deploy_sample(sandbox, namespace, group)
    try:
        create_location(cli, moto, tmp_path, bucket)
        created = cli.ok("backup", "create", "s3-b1", "--include-namespaces", namespace, "-o", "json")
        assert created.json()["status"]["phase"] == "Completed"
        keys = {obj["Key"] for obj in moto.client().list_objects_v2(Bucket=bucket)["Contents"]}
        assert {
            "velero/backups/s3-b1/velero-backup.json",
            "velero/backups/s3-b1/s3-b1.tar.gz",
            "velero/backups/s3-b1/s3-b1-logs.gz",
            "velero/backups/s3-b1/s3-b1-results.gz",
            "velero/backups/s3-b1/s3-b1-resource-list.json.gz",
            "velero/backups/s3-b1/strongroom-checksums.json",
        } <= keys
        assert cli.ok("backup", "verify", "s3-b1", "-o", "json").json()["ok"] is True
        assert [b["metadata"]["name"] for b in cli.ok("backup", "get", "-o", "json").json()["items"]] == [
            "s3-b1"
        ]

        delete_namespace(sandbox, namespace)
        restored = cli.ok("restore", "create", "s3-r1", "--from-backup", "s3-b1", "-o", "json").json()
        assert restored["status"]["phase"] == "Completed", restored
        config_map = get(sandbox, "configmap", "web-config", "-n", namespace)
        assert config_map is not None and config_map["data"] == {"index.html": "<h1>hello</h1>"}
        assert get(sandbox, f"crontabs.{group}", "nightly", "-n", namespace) is not None
        keys = {obj["Key"] for obj in moto.client().list_objects_v2(Bucket=bucket)["Contents"]}
        assert "velero/restores/s3-r1/restore-s3-r1-logs.gz" in keys
        assert "velero/restores/s3-r1/restore-s3-r1-results.gz" in keys

        # Nothing printed or stored carries the secret key.
        outputs = [
            cli.ok("backup-location", "get", "-o", "yaml").stdout,
            cli.ok("backup", "describe", "s3-b1", "--details").stdout,
            cli.ok("backup", "logs", "s3-b1").stdout,
            cli.ok("restore", "logs", "s3-r1").stdout,
            (cli.config_dir / "locations.yaml").read_text(),
        ]
        for key in keys:
            outputs.append(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode("latin-1"))
        assert not any(SECRET_ACCESS_KEY in text for text in outputs)
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--ignore-not-found", "--wait=false")


def test_wrong_credentials_fail_with_a_clear_error_and_nothing_stored(
    cli: Cli, moto: MotoServer, tmp_path: Path
) -> None:
    bucket = unique("bucket")
    moto.create_bucket(bucket)
    credentials = tmp_path / "broken-credentials"
    credentials.write_text("[backupStorage]\naws_access_key_id AKIA-without-equals\n")
    result = cli(
        "backup-location",
        "create",
        "broken",
        "--provider",
        "aws",
        "--bucket",
        bucket,
        "--config",
        f"region=minio,s3Url={moto.endpoint},s3ForcePathStyle=true,profile=backupStorage",
        "--credential-file",
        str(credentials),
    )
    assert result.code == 2
    assert "line 2" in result.stderr
    assert not (cli.config_dir / "locations.yaml").exists()


def test_unknown_config_key_is_refused(cli: Cli, moto: MotoServer) -> None:
    result = cli(
        "backup-location", "create", "typo", "--provider", "aws", "--bucket", "b",
        "--config", f"region=minio,s3URL={moto.endpoint}",
    )  # fmt: skip
    assert result.code == 2 and "invalid keys [s3URL]" in result.stderr
