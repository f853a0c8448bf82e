"""Backups are interchangeable with Velero's, both ways.

A backup laid out byte for byte as Velero writes it (tests/data/velero-golden)
appears in `backup get` as soon as its files are in the location, verifies,
and restores into the sandbox; a backup strongroom writes follows every rule
of Velero's format (tests/unit/archive covers the writer alone; this checks
what the whole engine stores).
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, deploy_sample, get, unique

from strongroom.archive import decode_resource_list, parse_item_path

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "velero-golden"
GOLDEN_CRD = "crontabs.stable.example.com"


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(sandbox, tmp_path / "config", monkeypatch)


@pytest.fixture
def golden_location(cli: Cli) -> Path:
    """The built-in default location holding Velero's golden backup, copied in as another tool would."""
    cli.storage.mkdir(parents=True)
    shutil.copytree(GOLDEN / "backups", cli.storage / "backups")
    return cli.storage


@pytest.fixture
def target(sandbox: Sandbox) -> Iterator[str]:
    namespace = unique("shop")
    yield namespace
    sandbox.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
    sandbox.kubectl("delete", "crd", GOLDEN_CRD, "--ignore-not-found", "--wait=false")


def test_a_velero_backup_in_the_location_is_listed_described_and_verified(
    cli: Cli, golden_location: Path
) -> None:
    listed = cli.ok("backup", "get", "-o", "json").json()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["golden"]
    assert listed["items"][0]["status"]["phase"] == "Completed"
    assert "golden" in cli.ok("backup", "get").stdout
    described = cli.ok("backup", "describe", "golden", "--details").stdout
    assert "shop/web" in described and "ArgoCD" in described
    assert "level=warning" in cli.ok("backup", "logs", "golden").stdout
    # No checksums file (Velero writes none): the tarball's format is still checked whole.
    verified = cli("backup", "verify", "golden", "-o", "json").json()
    assert verified["hasChecksums"] is False
    assert verified["tarball"]["ok"] is True


def test_a_velero_backup_restores_into_the_sandbox(
    cli: Cli, sandbox: Sandbox, golden_location: Path, target: str
) -> None:
    restored = cli(
        "restore",
        "create",
        "from-velero",
        "--from-backup",
        "golden",
        "--namespace-mappings",
        f"shop:{target}",
        "-o",
        "json",
    )
    status = restored.json()["status"]
    assert restored.code == 0, cli.ok("restore", "describe", "from-velero", "--details").stdout
    assert status["phase"] == "Completed" and "errors" not in status
    # The namespace controller fills kube-root-ca.crt with this cluster's CA: it differs, and is kept.
    details = cli.ok("restore", "describe", "from-velero", "--details").stdout
    assert "ConfigMap:kube-root-ca.crt already exists" in details
    assert get(sandbox, "endpointslices.discovery.k8s.io", "web-8kq4v", "-n", target) is not None

    config = get(sandbox, "configmap", "shop-config", "-n", target)
    assert config is not None
    golden_config = _golden_item("resources/configmaps/namespaces/shop/shop-config.json")
    assert config["data"] == golden_config["data"]
    assert config["metadata"]["labels"]["velero.io/backup-name"] == "golden"
    deployment = get(sandbox, "deployment", "web", "-n", target)
    assert deployment is not None
    assert (
        deployment["spec"]["template"]
        == _golden_item("resources/deployments.apps/namespaces/shop/web.json")["spec"]["template"]
    )
    binding = get(sandbox, "rolebinding", "shop-reader", "-n", target)
    assert binding is not None and all(
        subject.get("namespace", target) == target for subject in binding["subjects"]
    )
    service = get(sandbox, "service", "web", "-n", target)
    golden_service = _golden_item("resources/services/namespaces/shop/web.json")
    assert service is not None and service["spec"]["clusterIP"] != golden_service["spec"]["clusterIP"]
    # The CRD comes back with its custom resources, and they at the preferred version.
    assert get(sandbox, "crd", GOLDEN_CRD) is not None
    nightly = get(sandbox, "crontabs.stable.example.com", "nightly-report", "-n", target)
    assert nightly is not None
    assert (
        nightly["spec"]
        == _golden_item("resources/crontabs.stable.example.com/namespaces/shop/nightly-report.json")["spec"]
    )
    assert nightly["apiVersion"] == "stable.example.com/v1"
    namespace = get(sandbox, "namespace", target)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["argocd.argoproj.io/managed-by"] == "openshift-gitops"


def _golden_item(path: str) -> dict:  # type: ignore[type-arg]
    with tarfile.open(GOLDEN / "backups" / "golden" / "golden.tar.gz") as tar:
        member = tar.extractfile(path)
        assert member is not None
        result: dict = json.load(member)  # type: ignore[type-arg]
        return result


def test_a_strongroom_backup_follows_velero_s_format_rules(cli: Cli, sandbox: Sandbox) -> None:
    namespace = unique("fmt")
    group = f"{namespace}.example.com"
    deploy_sample(sandbox, namespace, group)
    try:
        cli.ok("backup", "create", "fmt", "--include-namespaces", namespace)
    finally:
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false")
        sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--wait=false")
    directory = cli.storage / "backups" / "fmt"
    # Every file Velero's server looks for is there; nothing else at the top of the location.
    assert sorted(path.name for path in cli.storage.iterdir()) == ["backups"]
    for suffix in (".tar.gz", "-logs.gz", "-results.gz", "-resource-list.json.gz", "-volumesnapshots.json.gz",
                   "-podvolumebackups.json.gz", "-csi-volumesnapshots.json.gz", "-itemoperations.json.gz"):  # fmt: skip
        assert (directory / f"fmt{suffix}").is_file(), suffix
    metadata = json.loads((directory / "velero-backup.json").read_text())
    assert (metadata["apiVersion"], metadata["kind"]) == ("velero.io/v1", "Backup")
    assert metadata["status"]["version"] == 1 and metadata["status"]["formatVersion"] == "1.1.0"
    assert metadata["metadata"]["labels"]["velero.io/storage-location"] == "default"
    assert "velero.io/source-cluster-k8s-gitversion" in metadata["metadata"]["annotations"]

    tarball = (directory / "fmt.tar.gz").read_bytes()
    assert (
        tarball[:4] == b"\x1f\x8b\x08\x00" and tarball[4:8] == b"\x00\x00\x00\x00"
    )  # Go's header: no name, no time
    with tarfile.open(directory / "fmt.tar.gz") as tar:
        members = tar.getmembers()
    assert members[0].name == "metadata/version"
    assert all(member.isreg() and member.mode == 0o755 for member in members)
    unversioned, preferred = set(), set()
    for member in members[1:]:
        path = parse_item_path(member.name)
        assert member.name.endswith(".json")
        key = (str(path.group_resource), path.namespace, path.name)
        (preferred if path.version else unversioned).add(key)
        if path.version:
            assert member.name.split("/")[2] == f"{path.version}-preferredversion"
    assert unversioned == preferred  # every item twice: plain and under its preferred version
    resource_list = decode_resource_list((directory / "fmt-resource-list.json.gz").read_bytes())
    assert sum(len(entries) for entries in resource_list.values()) == len(unversioned)
    assert f"{group}/v1/CronTab" in resource_list
    assert json.loads(gzip.decompress((directory / "fmt-results.gz").read_bytes())) == {
        "errors": {},
        "warnings": {},
    }
