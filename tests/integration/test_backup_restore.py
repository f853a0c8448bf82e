"""Backup and restore round trips on the sandbox through the command line, to the local default location.

Each test deploys the sample application in a namespace of its own (and a
CRD of its own group, so tests never share cluster-scoped state), backs it
up, changes or deletes something, restores, and checks the cluster.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, apply, delete_namespace, deploy_sample, get, unique
from tests.integration.sandboxapi import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(sandbox, tmp_path / "config", monkeypatch)


@pytest.fixture
def app(sandbox: Sandbox) -> Iterator[tuple[str, str]]:
    """A deployed sample application: (namespace, CRD group)."""
    namespace = unique("app")
    group = f"{namespace}.example.com"
    deploy_sample(sandbox, namespace, group)
    yield namespace, group
    for name in (namespace, f"{namespace}-copy"):
        sandbox.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")
    sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--ignore-not-found", "--wait=false")


def tar_members(cli: Cli, backup: str) -> list[str]:
    path = cli.storage / "backups" / backup / f"{backup}.tar.gz"
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_round_trip_of_a_deleted_namespace_brings_every_object_back(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, group = app
    before = {
        kind: get(sandbox, kind, name, "-n", namespace)
        for kind, name in (
            ("configmap", "web-config"),
            ("secret", "db-credentials"),
            ("deployment", "web"),
            ("serviceaccount", "web"),
            ("role", "web-reader"),
            ("rolebinding", "web-reader"),
            ("pvc", "data"),
            (f"crontabs.{group}", "nightly"),
        )
    }
    created = cli.ok("backup", "create", "b1", "--include-namespaces", namespace, "-o", "json").json()
    assert created["status"]["phase"] == "Completed"
    assert created["status"]["progress"]["itemsBackedUp"] >= 12
    names = tar_members(cli, "b1")
    assert names[0] == "metadata/version"
    assert f"resources/namespaces/cluster/{namespace}.json" in names
    assert f"resources/customresourcedefinitions.apiextensions.k8s.io/cluster/crontabs.{group}.json" in names
    assert any(name.startswith("resources/persistentvolumes/cluster/") for name in names)
    assert f"resources/crontabs.{group}/namespaces/{namespace}/nightly.json" in names
    assert f"resources/deployments.apps/v1-preferredversion/namespaces/{namespace}/web.json" in names

    delete_namespace(sandbox, namespace)
    sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--wait=true")
    restored = cli.ok("restore", "create", "r1", "--from-backup", "b1", "-o", "json").json()
    assert restored["status"]["phase"] == "Completed", restored

    for kind, old in before.items():
        assert old is not None
        new = get(sandbox, kind, old["metadata"]["name"], "-n", namespace)
        assert new is not None, f"{kind} was not restored"
        for field in ("data", "spec", "rules", "subjects", "roleRef"):
            if field in old and field != "spec":
                assert new[field] == old[field], f"{kind}.{field} differs"
        assert new["metadata"]["labels"]["velero.io/backup-name"] == "b1"
        assert new["metadata"]["labels"]["velero.io/restore-name"] == "r1"
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert get(sandbox, "deployment", "web", "-n", namespace)["spec"]["replicas"] == 2  # type: ignore[index]
    assert get(sandbox, f"crontabs.{group}", "cleanup", "-n", namespace)["spec"] == {
        "cronSpec": "*/30 * * * *"
    }  # type: ignore[index]
    namespace_object = get(sandbox, "namespace", namespace)
    assert namespace_object is not None and namespace_object["metadata"]["labels"]["team"] == "blue"
    eventually(lambda: _assert_bound(sandbox, namespace))
    service = get(sandbox, "service", "web", "-n", namespace)
    assert service is not None and service["spec"]["clusterIP"] not in ("", None)

    listed = cli.ok("restore", "get", "-o", "json").json()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["r1"]
    described = cli.ok("restore", "describe", "r1").stdout
    assert "Phase:                       Completed" in described
    logs = cli.ok("restore", "logs", "r1").stdout
    assert 'msg="Restored item"' in logs and "restore=velero/r1" in logs


def _assert_bound(sandbox: Sandbox, namespace: str) -> bool:
    pvc = get(sandbox, "pvc", "data", "-n", namespace)
    return pvc is not None and pvc.get("status", {}).get("phase") == "Bound"


def test_backup_get_describe_logs_verify_and_download(cli: Cli, app: tuple[str, str], tmp_path: Path) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "b2", "--include-namespaces", namespace, "--ttl", "24h")
    table = cli.ok("backup", "get").stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "STATUS", "ERRORS"]
    assert "b2" in table and "Completed" in table
    backup = cli.ok("backup", "get", "b2", "-o", "json").json()
    assert backup["kind"] == "Backup" and backup["spec"]["ttl"] == "24h0m0s"
    assert backup["metadata"]["labels"]["velero.io/storage-location"] == "default"
    assert backup["status"]["formatVersion"] == "1.1.0" and backup["status"]["version"] == 1
    described = cli.ok("backup", "describe", "b2", "--details").stdout
    assert f"{namespace}/web-config" in described and "Phase:  Completed" in described
    logs = cli.ok("backup", "logs", "b2").stdout
    assert "backup=velero/b2" in logs and 'msg="Backed up item"' in logs
    assert "s3cr3t-value" not in logs
    verified = cli.ok("backup", "verify", "b2", "-o", "json").json()
    assert verified["ok"] is True and "b2.tar.gz" in verified["checked"]
    target = tmp_path / "b2.tgz"
    cli.ok("backup", "download", "b2", "-o", str(target))
    with tarfile.open(target) as tar:
        assert "metadata/version" in tar.getnames()
    inspected = cli.ok("backup", "inspect", "b2", "--resource", "configmaps", "-o", "json").json()
    assert {item["name"] for item in inspected["items"]} >= {"web-config", "db-config"}
    printed = cli.ok(
        "backup", "inspect", "b2", "--resource", "configmaps", "--name", "db-config", "--print"
    ).json()
    assert printed["data"] == {"max_connections": "100"}


def test_verify_reports_an_altered_and_a_missing_file(cli: Cli, app: tuple[str, str]) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "b3", "--include-namespaces", namespace)
    directory = cli.storage / "backups" / "b3"
    results = directory / "b3-results.gz"
    results.write_bytes(gzip.compress(b'{"errors":{},"warnings":{}}\n'))
    (directory / "b3-resource-list.json.gz").unlink()
    report = cli("backup", "verify", "b3", "-o", "json")
    assert report.code == 1
    document = report.json()
    assert document["ok"] is False
    assert "b3-results.gz" in document["altered"]
    assert document["missing"] == ["b3-resource-list.json.gz"]


def test_resource_and_label_filters(cli: Cli, app: tuple[str, str]) -> None:
    namespace, group = app
    cli.ok(
        "backup",
        "create",
        "only-config",
        "--include-namespaces",
        namespace,
        "--include-resources",
        "cm,secrets",
    )
    names = tar_members(cli, "only-config")
    resources = {name.split("/")[1] for name in names if name.startswith("resources/")}
    # As in Velero, a resource list without namespaces leaves the namespace objects out.
    assert resources == {"configmaps", "secrets"}

    cli.ok(
        "backup",
        "create",
        "no-secrets",
        "--include-namespaces",
        namespace,
        "--exclude-resources",
        "secret,deploy",
    )
    resources = {
        name.split("/")[1] for name in tar_members(cli, "no-secrets") if name.startswith("resources/")
    }
    assert "secrets" not in resources and "deployments.apps" not in resources and "configmaps" in resources

    cli.ok("backup", "create", "db-only", "--include-namespaces", namespace, "--selector", "app=db")
    items = {
        name
        for name in tar_members(cli, "db-only")
        if f"/namespaces/{namespace}/" in name and "preferredversion" not in name
    }
    assert {item.rsplit("/", 1)[1] for item in items} == {
        "db-config.json",
        "db-credentials.json",
        "data.json",
    }
    # The PVC's volume is pulled in whatever its labels.
    assert any(
        name.startswith("resources/persistentvolumes/cluster/") for name in tar_members(cli, "db-only")
    )

    cli.ok(
        "backup", "create", "either", "--include-namespaces", namespace, "--or-selector", "app=db or app=web"
    )
    either = {
        name.rsplit("/", 1)[1] for name in tar_members(cli, "either") if f"/namespaces/{namespace}/" in name
    }
    assert {"db-config.json", "web-config.json", "web.json", "nightly.json"} <= either
    # A custom resource pulls in its definition.
    assert (
        f"resources/customresourcedefinitions.apiextensions.k8s.io/cluster/crontabs.{group}.json"
        in tar_members(cli, "either")
    )


def test_exclude_label_and_cluster_resources_false(cli: Cli, sandbox: Sandbox, app: tuple[str, str]) -> None:
    namespace, _ = app
    sandbox.kubectl("label", "configmap", "db-config", "-n", namespace, "velero.io/exclude-from-backup=true")
    cli.ok("backup", "create", "b4", "--include-namespaces", namespace, "--include-cluster-resources=false")
    names = tar_members(cli, "b4")
    assert not any("db-config" in name for name in names)
    assert any("web-config" in name for name in names)
    assert not any(
        name.startswith(("resources/persistentvolumes/", "resources/customresourcedefinitions"))
        for name in names
    )
    # As in Velero, false leaves out every cluster-scoped item, the namespace object too;
    # a restore then creates the namespace bare.
    assert f"resources/namespaces/cluster/{namespace}.json" not in names


def test_namespace_mapping_restores_beside_the_original(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, group = app
    target = f"{namespace}-copy"
    cli.ok("backup", "create", "b5", "--include-namespaces", namespace)
    result = cli.ok(
        "restore",
        "create",
        "--from-backup",
        "b5",
        "--namespace-mappings",
        f"{namespace}:{target}",
        "-o",
        "json",
    ).json()
    assert result["status"]["phase"] in ("Completed", "PartiallyFailed"), result
    assert result["metadata"]["name"].startswith("b5-")
    copy = get(sandbox, "configmap", "web-config", "-n", target)
    assert copy is not None and copy["data"] == {"index.html": "<h1>hello</h1>"}
    binding = get(sandbox, "rolebinding", "web-reader", "-n", target)
    assert binding is not None and binding["subjects"][0]["namespace"] == target
    assert get(sandbox, f"crontabs.{group}", "nightly", "-n", target) is not None
    original = get(sandbox, "configmap", "web-config", "-n", namespace)
    assert original is not None and "velero.io/restore-name" not in original["metadata"].get("labels", {})


def test_existing_objects_skipped_warned_or_updated_by_policy(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "b6", "--include-namespaces", namespace, "--include-resources", "configmaps")
    sandbox.kubectl(
        "patch",
        "configmap",
        "web-config",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"data":{"index.html":"changed"}}',
    )

    dry = cli.ok("restore", "create", "dry", "--from-backup", "b6", "--dry-run", "-o", "json").json()
    actions = {(item["resource"], item["name"]): item for item in dry["items"]}
    assert actions[("configmaps", "web-config")]["action"] == "conflict"
    assert "changed" in actions[("configmaps", "web-config")]["diff"]
    assert actions[("configmaps", "db-config")]["action"] in ("skip", "conflict")
    assert get(sandbox, "configmap", "web-config", "-n", namespace)["data"]["index.html"] == "changed"  # type: ignore[index]
    assert cli("restore", "get", "dry").code == 3  # a dry run stores nothing

    kept = cli.ok(
        "restore", "create", "keep", "--from-backup", "b6", "--existing-resource-policy", "none", "-o", "json"
    ).json()
    assert kept["status"]["phase"] == "Completed"
    assert kept["status"].get("warnings", 0) >= 1
    assert get(sandbox, "configmap", "web-config", "-n", namespace)["data"]["index.html"] == "changed"  # type: ignore[index]
    described = cli.ok("restore", "describe", "keep", "--details").stdout
    assert "already exists" in described

    updated = cli.ok(
        "restore",
        "create",
        "upd",
        "--from-backup",
        "b6",
        "--existing-resource-policy",
        "update",
        "-o",
        "json",
    ).json()
    assert updated["status"]["phase"] == "Completed", updated
    web = get(sandbox, "configmap", "web-config", "-n", namespace)
    assert web is not None and web["data"]["index.html"] == "<h1>hello</h1>"
    assert web["metadata"]["labels"]["velero.io/restore-name"] == "upd"


def test_corrupt_tarball_fails_before_anything_is_created(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "b7", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    tarball = cli.storage / "backups" / "b7" / "b7.tar.gz"
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2])
    result = cli("restore", "create", "r7", "--from-backup", "b7", "-o", "json")
    assert result.code == 1
    assert result.json()["status"]["phase"] == "Failed"
    assert "checksum" in result.json()["status"]["failureReason"]
    assert get(sandbox, "namespace", namespace) is None


def test_truncated_tarball_without_checksums_is_refused_by_the_format_check(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "b8", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    directory = cli.storage / "backups" / "b8"
    (directory / "strongroom-checksums.json").unlink()
    tarball = directory / "b8.tar.gz"
    tarball.write_bytes(tarball.read_bytes()[:-40])
    result = cli("restore", "create", "r8", "--from-backup", "b8", "-o", "json")
    assert result.code == 1
    assert result.json()["status"]["phase"] == "Failed"
    assert get(sandbox, "namespace", namespace) is None


def test_tar_entries_escaping_the_archive_are_refused(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "b9", "--include-namespaces", namespace)
    directory = cli.storage / "backups" / "b9"
    (directory / "strongroom-checksums.json").unlink()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in (("metadata/version", b"1.1.0\n"), ("../../etc/evil.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    (directory / "b9.tar.gz").write_bytes(buffer.getvalue())
    result = cli("restore", "create", "r9", "--from-backup", "b9", "-o", "json")
    assert result.code == 1
    assert ".." in result.json()["status"]["failureReason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backup", "create", "x1", "--selector", "app=web", "--or-selector", "a=b or c=d"], "not both"),
        (["backup", "create", "x2", "--selector", "app in (web"], "selector"),
        (["backup", "create", "x3", "--ttl", "30 days"], "ttl"),
        (["backup", "create", "x4", "--include-cluster-resources", "maybe"], "--include-cluster-resources"),
        (
            ["backup", "create", "x5", "--include-namespaces", "a", "--exclude-namespaces", "a"],
            "excludes list cannot contain",
        ),
        (["backup", "create", "Bad_Name"], "invalid backup name"),
        (["backup", "create", "x6", "--storage-location", "nowhere"], "not found"),
        (["restore", "create", "--from-backup", "missing"], "not found"),
        (["restore", "create"], "--from-backup"),
        (
            ["restore", "create", "--from-backup", "b", "--namespace-mappings", "a-b"],
            "invalid namespace mapping",
        ),
        (["restore", "create", "--from-backup", "b", "--include-resources", "nodes"], "non-restorable"),
        (
            ["restore", "create", "--from-backup", "b", "--existing-resource-policy", "replace"],
            "ExistingResourcePolicy",
        ),
        (["backup", "describe", "nope"], "not found"),
        (["backup", "delete", "nope", "--confirm"], "not found"),
        (["backup", "get", "--foo"], "No such option"),
        (["backup", "create"], "Missing argument"),
        (
            ["restore", "create", "--from-backup", "b", "--restore-resource-priorities", "a,-,b,-,c"],
            "separator",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_written(
    cli: Cli, args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.code in (2, 3), (result.code, result.stderr)
    assert message.lower() in result.stderr.lower(), result.stderr
    storage = cli.storage / "backups"
    assert not storage.exists() or not any(storage.iterdir())


def test_backup_delete_removes_every_file_and_needs_confirmation(cli: Cli, app: tuple[str, str]) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "gone", "--include-namespaces", namespace, "--include-resources", "configmaps")
    refused = cli("backup", "delete", "gone")
    assert refused.code == 2 and "--confirm" in refused.stderr
    assert (cli.storage / "backups" / "gone" / "velero-backup.json").exists()
    cli.ok("backup", "delete", "gone", "--confirm")
    assert not (cli.storage / "backups" / "gone").exists()
    assert cli("backup", "get", "gone").code == 3


def test_a_backup_name_already_stored_is_refused(cli: Cli, app: tuple[str, str]) -> None:
    namespace, _ = app
    cli.ok(
        "backup", "create", "twice", "--include-namespaces", namespace, "--include-resources", "configmaps"
    )
    again = cli("backup", "create", "twice", "--include-namespaces", namespace)
    assert again.code == 4 and "already exists" in again.stderr


def test_foreign_top_level_directory_makes_the_location_unusable(cli: Cli, tmp_path: Path) -> None:
    store = tmp_path / "shared-bucket"
    (store / "photos").mkdir(parents=True)
    (store / "photos" / "cat.jpg").write_bytes(b"jpeg")
    created = cli("backup-location", "create", "shared", "--provider", "local", "--bucket", str(store))
    assert created.code == 2
    assert "invalid top-level directories: [photos]" in created.stderr
    assert "prefix" in created.stderr
    cli.ok(
        "backup-location",
        "create",
        "shared",
        "--provider",
        "local",
        "--bucket",
        str(store),
        "--prefix",
        "strongroom",
    )
    listed = cli.ok("backup-location", "get", "-o", "json").json()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["shared"]
    assert listed["items"][0]["spec"]["default"] is True


def test_read_only_location_refuses_backups(cli: Cli, tmp_path: Path, app: tuple[str, str]) -> None:
    namespace, _ = app
    cli.ok(
        "backup-location",
        "create",
        "archive",
        "--provider",
        "local",
        "--bucket",
        str(tmp_path / "archive"),
        "--access-mode",
        "ReadOnly",
    )
    result = cli("backup", "create", "ro", "--include-namespaces", namespace)
    assert result.code == 2 and "ReadOnly" in result.stderr
    cli.ok("backup-location", "set", "archive", "--access-mode", "ReadWrite")
    cli.ok("backup", "create", "ro", "--include-namespaces", namespace, "--include-resources", "configmaps")


def test_storage_is_the_source_of_truth(cli: Cli, app: tuple[str, str]) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "seen", "--include-namespaces", namespace, "--include-resources", "configmaps")
    # A half-written backup (no velero-backup.json yet) is not listed.
    partial = cli.storage / "backups" / "partial"
    partial.mkdir()
    (partial / "partial.tar.gz").write_bytes(b"incomplete")
    listed = cli.ok("backup", "get", "-o", "json").json()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["seen"]
    document = json.loads((cli.storage / "backups" / "seen" / "velero-backup.json").read_text())
    assert document["status"]["phase"] == "Completed"
    checksums = json.loads((cli.storage / "backups" / "seen" / "strongroom-checksums.json").read_text())
    assert set(checksums["files"]) >= {"seen.tar.gz", "seen-logs.gz", "velero-backup.json"}


def test_restoring_one_namespace_brings_the_definition_of_its_custom_resources(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, group = app
    cli.ok("backup", "create", "crd1", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--wait=true")

    without = cli("restore", "create", "no-crd", "--from-backup", "crd1", "--include-namespaces", namespace,
                  "--include-cluster-resources=false", "-o", "json")  # fmt: skip
    assert without.code == 6, without.stderr
    assert without.json()["status"]["phase"] == "PartiallyFailed"
    assert get(sandbox, "crd", f"crontabs.{group}") is None
    assert get(sandbox, "configmap", "web-config", "-n", namespace) is not None
    details = cli.ok("restore", "describe", "no-crd", "--details").stdout
    assert f"crontabs.{group}" in details

    restored = cli.ok(
        "restore",
        "create",
        "with-crd",
        "--from-backup",
        "crd1",
        "--include-namespaces",
        namespace,
        "-o",
        "json",
    )
    assert restored.json()["status"]["phase"] == "Completed", restored.stdout
    assert get(sandbox, "crd", f"crontabs.{group}") is not None
    nightly = get(sandbox, f"crontabs.{group}", "nightly", "-n", namespace)
    assert nightly is not None and nightly["spec"] == {"cronSpec": "0 2 * * *"}


def test_restore_dry_run_of_a_deleted_namespace_changes_nothing(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "dry1", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    dry = cli.ok("restore", "create", "dry1-r", "--from-backup", "dry1", "--dry-run")
    assert "ACTION" in dry.stdout and "nothing was changed" in dry.stdout
    assert "create" in dry.stdout and "web-config" in dry.stdout
    assert get(sandbox, "namespace", namespace) is None
    assert cli("restore", "get", "dry1-r").code == 3


def test_node_ports_are_kept_only_when_asked(cli: Cli, sandbox: Sandbox, app: tuple[str, str]) -> None:
    namespace, _ = app
    service = get(sandbox, "service", "web", "-n", namespace)
    assert service is not None
    node_port = service["spec"]["ports"][0]["nodePort"]
    cli.ok("backup", "create", "np1", "--include-namespaces", namespace, "--include-resources", "services")
    delete_namespace(sandbox, namespace)
    cli.ok("restore", "create", "np-keep", "--from-backup", "np1", "--preserve-nodeports", "true")
    kept = get(sandbox, "service", "web", "-n", namespace)
    assert kept is not None and kept["spec"]["ports"][0]["nodePort"] == node_port
    assert (
        kept["spec"]["clusterIP"] != service["spec"]["clusterIP"]
        or kept["metadata"]["uid"] != service["metadata"]["uid"]
    )

    target = f"{namespace}-copy"
    cli.ok(
        "restore", "create", "np-new", "--from-backup", "np1", "--namespace-mappings", f"{namespace}:{target}"
    )
    moved = get(sandbox, "service", "web", "-n", target)
    assert moved is not None and moved["spec"]["type"] == "NodePort"
    assert moved["spec"]["ports"][0]["nodePort"] != node_port


def test_status_is_restored_only_for_the_resources_named(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, group = app
    sandbox.kubectl("delete", "crd", f"crontabs.{group}")
    definition = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    apply(sandbox, [definition])
    eventually(
        lambda: sandbox.kubectl("get", f"widgets.{group}", "-n", namespace, check=False).returncode == 0
    )
    for name in ("w1", "w2"):
        apply(
            sandbox,
            [
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"size": 3},
                }
            ],
        )
        sandbox.kubectl(
            "patch",
            f"widgets.{group}",
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"ready":true}}',
        )
    try:
        cli.ok(
            "backup",
            "create",
            "st1",
            "--include-namespaces",
            namespace,
            "--include-resources",
            f"widgets.{group}",
        )
        sandbox.kubectl("delete", f"widgets.{group}", "--all", "-n", namespace)
        restored = cli.ok(
            "restore",
            "create",
            "st1-r",
            "--from-backup",
            "st1",
            "--status-include-resources",
            f"widgets.{group}",
            "-o",
            "json",
        )
        assert restored.json()["status"]["phase"] == "Completed", restored.stdout
        widget = get(sandbox, f"widgets.{group}", "w1", "-n", namespace)
        assert widget is not None and widget["status"] == {"ready": True} and widget["spec"] == {"size": 3}

        sandbox.kubectl("delete", f"widgets.{group}", "--all", "-n", namespace)
        cli.ok("restore", "create", "st1-plain", "--from-backup", "st1")
        plain = get(sandbox, f"widgets.{group}", "w2", "-n", namespace)
        assert plain is not None and "status" not in plain
    finally:
        sandbox.kubectl("delete", "crd", f"widgets.{group}", "--ignore-not-found", "--wait=false")


def _restored_order(log: str) -> list[str]:
    order: list[str] = []
    for line in log.splitlines():
        if 'msg="Restored item"' in line:
            resource = next(part.split("=", 1)[1] for part in line.split() if part.startswith("resource="))
            if resource not in order:
                order.append(resource)
    return order


def test_restore_order_follows_velero_priorities_unless_overridden(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, group = app
    cli.ok("backup", "create", "order", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    cli.ok("restore", "create", "order-default", "--from-backup", "order")
    default = _restored_order(cli.ok("restore", "logs", "order-default").stdout)
    rbac = "rbac.authorization.k8s.io"
    expected = ["namespaces", "persistentvolumeclaims", f"roles.{rbac}", "serviceaccounts", f"rolebindings.{rbac}",
                "secrets", "configmaps", "pods", "replicasets.apps", "services"]  # fmt: skip
    # The app's pods and ReplicaSet are in the backup once the sandbox's controllers made them.
    made = ("pods", "replicasets.apps")
    present = [resource for resource in expected if resource in default or resource not in made]
    assert [resource for resource in default if resource in expected] == present
    # Everything else follows, alphabetically.
    rest = [
        resource
        for resource in default
        if resource not in expected and resource != "customresourcedefinitions.apiextensions.k8s.io"
    ]
    assert rest == sorted(rest), default

    delete_namespace(sandbox, namespace)
    cli.ok(
        "restore",
        "create",
        "order-custom",
        "--from-backup",
        "order",
        "--restore-resource-priorities",
        "configmaps,secrets,-,serviceaccounts",
    )
    custom = _restored_order(cli.ok("restore", "logs", "order-custom").stdout)
    assert (
        custom.index("configmaps")
        < custom.index("secrets")
        < custom.index(f"crontabs.{group}")
        < custom.index("serviceaccounts")
    )
    assert custom[-1] == "serviceaccounts"
    bad = cli(
        "restore",
        "create",
        "order-bad",
        "--from-backup",
        "order",
        "--restore-resource-priorities",
        "a,-,b,-,c",
    )
    assert bad.code == 2 and "separator" in bad.stderr


def test_restoring_chosen_namespaces_brings_claims_back_bound(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, _ = app
    cli.ok("backup", "create", "claims", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    restored = cli.ok(
        "restore",
        "create",
        "claims-r",
        "--from-backup",
        "claims",
        "--include-namespaces",
        namespace,
        "-o",
        "json",
    )
    assert restored.json()["status"]["phase"] == "Completed", restored.stdout
    # The volume had reclaim policy Delete and no snapshot: as in Velero it is left out and
    # the claim is provisioned anew instead of pointing at a volume that no longer exists.
    eventually(lambda: _assert_bound(sandbox, namespace))
    listing = cli.ok("restore", "describe", "claims-r", "--details").stdout
    assert f"{namespace}/data(created)" in listing and f"{namespace}/web-config(created)" in listing


def test_a_read_only_location_can_be_restored_from(
    cli: Cli, sandbox: Sandbox, tmp_path: Path, app: tuple[str, str]
) -> None:
    namespace, _ = app
    archive = tmp_path / "archive"
    cli.ok("backup-location", "create", "archive", "--provider", "local", "--bucket", str(archive))
    cli.ok("backup", "create", "kept", "--include-namespaces", namespace, "--include-resources", "configmaps")
    cli.ok("backup-location", "set", "archive", "--access-mode", "ReadOnly")
    delete_namespace(sandbox, namespace)
    before = sorted(str(path.relative_to(archive)) for path in archive.rglob("*"))
    restored = cli("restore", "create", "from-ro", "--from-backup", "kept", "-o", "json")
    assert restored.code == 0, restored.stderr
    assert "ReadOnly" in restored.stderr
    assert get(sandbox, "configmap", "web-config", "-n", namespace) is not None
    assert sorted(str(path.relative_to(archive)) for path in archive.rglob("*")) == before
    refused = cli("backup", "delete", "kept", "--confirm")
    assert refused.code == 2 and "ReadOnly" in refused.stderr


def test_dry_run_lists_custom_resources_whose_definition_is_missing(
    cli: Cli, sandbox: Sandbox, app: tuple[str, str]
) -> None:
    namespace, group = app
    cli.ok("backup", "create", "dry-crd", "--include-namespaces", namespace)
    delete_namespace(sandbox, namespace)
    sandbox.kubectl("delete", "crd", f"crontabs.{group}", "--wait=true")
    dry = cli.ok(
        "restore",
        "create",
        "dry-crd-r",
        "--from-backup",
        "dry-crd",
        "--include-namespaces",
        namespace,
        "--dry-run",
        "-o",
        "json",
    ).json()
    actions = {(item["resource"], item["name"]): item["action"] for item in dry["items"]}
    assert actions[("customresourcedefinitions.apiextensions.k8s.io", f"crontabs.{group}")] == "create"
    assert actions[(f"crontabs.{group}", "nightly")] == "create"
    assert get(sandbox, "crd", f"crontabs.{group}") is None


def test_location_settings_are_merged_checked_and_stored_with_absolute_paths(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "creds").write_text("[default]\naws_access_key_id=AKIA1\naws_secret_access_key=s\n")
    cli.ok("backup-location", "create", "s3", "--provider", "aws", "--bucket", "b", "--config", "region=eu-west-1,s3ForcePathStyle=true",
           "--credential-file", "creds", "--skip-check")  # fmt: skip
    cli.ok("backup-location", "set", "s3", "--config", "s3Url=http://127.0.0.1:9,region=")
    location = cli.ok("backup-location", "get", "s3", "-o", "json").json()["spec"]
    assert location["config"] == {"s3ForcePathStyle": "true", "s3Url": "http://127.0.0.1:9"}
    assert location["credentialFile"] == str(tmp_path / "creds")
    bad = cli("backup-location", "set", "s3", "--config", "s3url=http://x")
    assert bad.code == 2 and "invalid keys [s3url]" in bad.stderr
    assert "s3url" not in cli.ok("backup-location", "get", "s3", "-o", "json").stdout
    cli.ok("backup-location", "create", "here", "--provider", "local", "--bucket", "relative-dir")
    assert cli.ok("backup-location", "get", "here", "-o", "json").json()["spec"]["objectStorage"][
        "bucket"
    ] == str(tmp_path / "relative-dir")


def test_an_unreachable_location_is_skipped_when_listing_every_location(
    cli: Cli, app: tuple[str, str], tmp_path: Path
) -> None:
    namespace, _ = app
    cli.ok(
        "backup-location",
        "create",
        "local",
        "--provider",
        "local",
        "--bucket",
        str(tmp_path / "ok"),
        "--default",
    )
    cli.ok(
        "backup",
        "create",
        "seen-here",
        "--include-namespaces",
        namespace,
        "--include-resources",
        "configmaps",
    )
    (tmp_path / "creds").write_text("[default]\naws_access_key_id=AKIA1\naws_secret_access_key=s\n")
    cli.ok("backup-location", "create", "gone", "--provider", "aws", "--bucket", "b", "--credential-file", str(tmp_path / "creds"),
           "--config", "region=us-east-1,s3Url=http://127.0.0.1:9,s3ForcePathStyle=true", "--skip-check")  # fmt: skip
    listed = cli("backup", "get", "-o", "json")
    assert listed.code == 0, listed.stderr
    assert [item["metadata"]["name"] for item in listed.json()["items"]] == ["seen-here"]
    assert "location 'gone' skipped" in listed.stderr
    assert cli("backup", "get", "--storage-location", "gone").code == 5


def test_namespace_globs_and_restore_filters(cli: Cli, sandbox: Sandbox, app: tuple[str, str]) -> None:
    namespace, group = app
    sibling = f"{namespace}-copy"
    sandbox.kubectl("create", "namespace", sibling)
    sandbox.kubectl("create", "configmap", "sibling-config", "-n", sibling, "--from-literal=a=b")
    cli.ok("backup", "create", "globbed", "--include-namespaces", f"{namespace}*", "--exclude-namespaces", sibling,
           "--include-resources", "configmaps,secrets,crontabs")  # fmt: skip
    names = tar_members(cli, "globbed")
    assert any(f"/namespaces/{namespace}/web-config.json" in name for name in names)
    assert not any(f"/namespaces/{sibling}/" in name for name in names)
    assert any(f"crontabs.{group}/namespaces/{namespace}/nightly.json" in name for name in names)

    delete_namespace(sandbox, namespace)
    restored = cli.ok("restore", "create", "filtered", "--from-backup", "globbed", "--exclude-resources", "secrets",
                      "--selector", "app=web", "-o", "json")  # fmt: skip
    assert restored.json()["status"]["phase"] == "Completed", restored.stdout
    assert get(sandbox, "configmap", "web-config", "-n", namespace) is not None
    assert get(sandbox, "configmap", "db-config", "-n", namespace) is None  # app=db
    assert get(sandbox, "secret", "db-credentials", "-n", namespace) is None  # excluded resource
    assert get(sandbox, f"crontabs.{group}", "nightly", "-n", namespace) is not None  # app=web
