"""The generated CRDs installed with kubectl: established, explained, validating, listing like Velero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.sandboxapi import eventually

from strongroom.model.crds import crd_manifests

pytestmark = pytest.mark.integration

SEED = Path(__file__).parents[1] / "data" / "seed"
SEED_NAMESPACE = "openshift-adp"


def established(sandbox: Sandbox, name: str) -> bool:
    crd = sandbox.kubectl_json("get", "crd", name)
    conditions = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
    return conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True"


@pytest.fixture(scope="module")
def installed(sandbox: Sandbox) -> list[dict[str, Any]]:
    """All CRDs applied with kubectl, as an administrator would; left installed (applying again is a no-op)."""
    manifests = crd_manifests()
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    for manifest in manifests:
        eventually(lambda name=manifest["metadata"]["name"]: established(sandbox, name))
    return manifests


def apply(sandbox: Sandbox, obj: dict[str, Any], *args: str, check: bool = True) -> Any:
    return sandbox.kubectl("apply", "-f", "-", *args, input=json.dumps(obj), check=check)


def seed_backup(namespace: str) -> dict[str, Any]:
    backup: dict[str, Any] = yaml.safe_load((SEED / "backup.yaml").read_text(encoding="utf-8"))
    backup["metadata"]["namespace"] = namespace
    return backup


def test_every_crd_is_established_and_served(sandbox: Sandbox, installed: list[dict[str, Any]]) -> None:
    resources = sandbox.kubectl("api-resources", "--api-group=velero.io", "-o", "name").stdout.split()
    assert "backups.velero.io" in resources
    assert "backuprepositories.velero.io" in resources
    assert len(resources) == 11
    short = sandbox.kubectl("get", "dpa,bsl,vsl,ssr", "-A", "-o", "name").returncode
    assert short == 0


def test_applying_the_crds_again_changes_nothing(sandbox: Sandbox, installed: list[dict[str, Any]]) -> None:
    out = sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(installed)).stdout
    assert out.count("unchanged") == len(installed), out


def test_kubectl_explain_prints_the_models_descriptions(
    sandbox: Sandbox, installed: list[dict[str, Any]]
) -> None:
    ttl = eventually(lambda: sandbox.kubectl("explain", "backups.spec.ttl").stdout)
    assert "720h0m0s" in ttl
    assert "<string>" in ttl
    schedule = sandbox.kubectl("explain", "schedules.spec.schedule").stdout
    assert "cron" in schedule
    dpa = sandbox.kubectl(
        "explain", "dataprotectionapplications.spec", "--api-version=oadp.openshift.io/v1alpha1"
    )
    assert "backupLocations" in dpa.stdout


@pytest.mark.parametrize(
    ("field", "value"), [("ttl", 5), ("includedNamespaces", "a"), ("includeClusterResources", "yes")]
)
def test_a_backup_with_a_wrongly_typed_field_is_refused_naming_it(
    sandbox: Sandbox, installed: list[dict[str, Any]], namespace: str, field: str, value: Any
) -> None:
    backup = seed_backup(namespace)
    backup["spec"][field] = value
    result = apply(sandbox, backup, check=False)
    assert result.returncode != 0
    assert f"spec.{field}" in result.stderr
    assert sandbox.kubectl("get", "backup", "nginx-backup", "-n", namespace, check=False).returncode != 0


def test_a_restore_with_an_unknown_hook_error_mode_is_refused(
    sandbox: Sandbox, installed: list[dict[str, Any]], namespace: str
) -> None:
    restore: dict[str, Any] = yaml.safe_load((SEED / "restore-hooks.yaml").read_text(encoding="utf-8"))
    restore["metadata"]["namespace"] = namespace
    restore["spec"]["hooks"]["resources"][0]["postHooks"][1]["exec"]["onError"] = "Ignore"
    result = apply(sandbox, restore, check=False)
    assert result.returncode != 0
    assert "onError" in result.stderr
    assert "Continue" in result.stderr


@pytest.mark.parametrize("path", sorted(SEED.glob("*.yaml")), ids=lambda path: path.stem)
def test_the_seed_examples_are_accepted_verbatim(
    sandbox: Sandbox, installed: list[dict[str, Any]], path: Path
) -> None:
    if sandbox.kubectl("get", "namespace", SEED_NAMESPACE, check=False).returncode != 0:
        # Shared with other tests of the session (the seed's namespace); never deleted here.
        sandbox.kubectl("create", "namespace", SEED_NAMESPACE, check=False)
    result = sandbox.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr
    assert "(server dry run)" in result.stdout
    # Nothing is pruned: the server hands back every field the example wrote.
    example = yaml.safe_load(path.read_text(encoding="utf-8"))
    answered = json.loads(sandbox.kubectl("apply", "--dry-run=server", "-f", str(path), "-o", "json").stdout)
    assert answered["spec"] == example["spec"]


def test_a_stored_backup_keeps_every_field_and_status_is_written_only_through_the_subresource(
    sandbox: Sandbox, installed: list[dict[str, Any]], namespace: str
) -> None:
    backup = seed_backup(namespace)
    backup["status"] = {"phase": "Completed"}
    apply(sandbox, backup)
    stored = sandbox.kubectl_json("get", "backup", "nginx-backup", "-n", namespace)
    assert stored["spec"] == backup["spec"]
    assert stored["metadata"]["labels"] == {"velero.io/storage-location": "default"}
    assert "status" not in stored or stored["status"] == {}


def test_kubectl_get_backups_prints_veleros_columns(
    sandbox: Sandbox, installed: list[dict[str, Any]], namespace: str
) -> None:
    apply(sandbox, seed_backup(namespace))
    status = {
        "phase": "PartiallyFailed",
        "errors": 2,
        "warnings": 3,
        "startTimestamp": "2024-07-01T10:00:00Z",
        "expiration": "2099-07-31T10:00:00Z",
    }
    sandbox.kubectl(
        "patch",
        "backup",
        "nginx-backup",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    lines = sandbox.kubectl("get", "backups", "-n", namespace).stdout.splitlines()
    header = lines[0].split()
    assert header == ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE", "LOCATION"]
    row = lines[1].split()
    assert row[:4] == ["nginx-backup", "PartiallyFailed", "2", "3"]
    assert row[4].endswith("d")  # a relative age, like every date column
    assert row[5:] == ["2099-07-31T10:00:00Z", "velero-sample-1"]
    wide = sandbox.kubectl("get", "backups", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    assert "QUEUE POSITION" in wide
    assert "SELECTOR" in wide


def test_kubectl_get_schedules_and_locations_print_veleros_columns(
    sandbox: Sandbox, installed: list[dict[str, Any]], namespace: str
) -> None:
    schedule: dict[str, Any] = yaml.safe_load((SEED / "schedule.yaml").read_text(encoding="utf-8"))
    schedule["metadata"]["namespace"] = namespace
    apply(sandbox, schedule)
    lines = sandbox.kubectl("get", "schedules", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "SCHEDULE", "LASTBACKUP", "AGE", "PAUSED"]
    assert "0 7 * * *" in lines[1]
    location = {
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": "velero-sample-1", "namespace": namespace},
        "spec": {"provider": "aws", "default": True, "objectStorage": {"bucket": "b", "prefix": "velero"}},
    }
    apply(sandbox, location)
    lines = sandbox.kubectl("get", "bsl", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "LAST", "VALIDATED", "AGE", "DEFAULT"]
    assert lines[1].split()[-1] == "true"
