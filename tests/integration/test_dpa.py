"""The DataProtectionApplication reconciler on the sandbox: the guide's DPAs applied with kubectl become locations.

Each test applies a DPA with the real kubectl (so the seed's YAML passes the
generated CRD schema), runs one reconcile, and reads back what an
administrator would look at: the DPA's ``Reconciled`` condition and the
BackupStorageLocations and VolumeSnapshotLocations it owns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, eventually
from tests.integration.serverkit import install_crds
from tests.runasync import run_async

from strongroom.controller.dpa import DpaOutcome, DpaReconciler
from strongroom.kube import KubeClient

SEED = Path(__file__).resolve().parents[1] / "data" / "seed"
SECRET_MARKERS = ("AKIASEEDEXAMPLE", "SeedSecretValue", "azure-storage-key-value", "BEGIN PRIVATE KEY")

AWS_CREDENTIALS = "".join(
    f"[{profile}]\naws_access_key_id=AKIASEEDEXAMPLE{n}\naws_secret_access_key=SeedSecretValue{n}\n"
    for n, profile in enumerate(("default", "backupStorage", "volumeSnapshot"))
)
AZURE_CREDENTIALS = (
    "AZURE_SUBSCRIPTION_ID=00000000-1111-2222-3333-444444444444\nAZURE_TENANT_ID=tenant\n"
    "AZURE_CLIENT_ID=client\nAZURE_CLIENT_SECRET=SeedSecretValue9\nAZURE_RESOURCE_GROUP=Velero_Backups\n"
    "AZURE_STORAGE_ACCOUNT_ACCESS_KEY=azure-storage-key-value\nAZURE_CLOUD_NAME=AzurePublicCloud\n"
)
GCP_CREDENTIALS = json.dumps(
    {
        "type": "service_account",
        "project_id": "my-project-123456",
        "private_key_id": "0123",
        "private_key": "-----BEGIN PRIVATE KEY-----\nSeedSecretValue\n-----END PRIVATE KEY-----\n",
        "client_email": "velero@my-project-123456.iam.gserviceaccount.com",
    }
)
CONTENT = {"aws": AWS_CREDENTIALS, "azure": AZURE_CREDENTIALS, "gcp": GCP_CREDENTIALS}

# file -> (the Secrets it needs: name -> provider, its BSL names, its VSL names)
SEED_DPAS: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    "dpa-0212-default-plugins.yaml": ({"cloud-credentials": "aws"}, ["default"], []),
    "dpa-0228-custom-plugin.yaml": ({"cloud-credentials-gcp": "gcp"}, ["dpa-sample-1"], []),
    "dpa-0353-aws-profiles.yaml": ({"cloud-credentials": "aws"}, ["default"], ["default"]),
    "dpa-0366-resource-allocations.yaml": ({"cloud-credentials": "aws"}, ["default"], []),
    "dpa-0378-ca-cert.yaml": ({"cloud-credentials": "aws"}, ["default"], []),
    "dpa-0403-aws.yaml": ({"cloud-credentials": "aws"}, ["default"], ["default"]),
    "dpa-0551-azure-custom-secret.yaml": (
        {"azure-backup-credentials": "azure", "cloud-credentials-azure": "azure"},
        ["dpa-sample-1"],
        ["dpa-sample-1"],
    ),
    "dpa-0616-azure.yaml": ({"cloud-credentials-azure": "azure"}, ["dpa-sample-1"], ["dpa-sample-1"]),
    "dpa-0771-gcp-custom-secret.yaml": (
        {"gcp-backup-credentials": "gcp", "cloud-credentials-gcp": "gcp"},
        ["dpa-sample-1"],
        ["dpa-sample-1"],
    ),
    "dpa-0836-gcp.yaml": ({"cloud-credentials-gcp": "gcp"}, ["dpa-sample-1"], ["dpa-sample-1"]),
    "dpa-0967-mcg-custom-secret.yaml": ({"mcg-backup-credentials": "aws"}, ["dpa-sample-1"], []),
    "dpa-1032-mcg.yaml": ({"cloud-credentials": "aws"}, ["dpa-sample-1"], []),
    "dpa-1142-csi-custom-secret.yaml": ({"ocs-backup-credentials": "gcp"}, ["dpa-sample-1"], []),
    "dpa-1207-csi-gcp.yaml": ({"cloud-credentials-gcp": "gcp"}, ["dpa-sample-1"], []),
    "dpa-1517-log-level.yaml": ({"cloud-credentials": "aws"}, ["velero-sample-1"], []),
}


class Clock:
    """A clock the test moves by hand, so that lastTransitionTime tells which reconcile set it."""

    def __init__(self) -> None:
        self.now = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self) -> None:
        self.now += timedelta(minutes=5)


@pytest.fixture(scope="module")
def crds(sandbox: Sandbox) -> None:
    """The CRDs, as strongroom installs them."""
    install_crds(sandbox)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ns(crds: None, namespace: str) -> Iterator[str]:
    yield namespace


def create_secret(kube: Kube, namespace: str, name: str, content: str, key: str = "cloud") -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={key: content})
    kube.core.create_namespaced_secret(namespace, body)


def apply_dpa(sandbox: Sandbox, namespace: str, manifest: dict[str, Any]) -> None:
    manifest = json.loads(json.dumps(manifest))
    manifest["metadata"]["namespace"] = namespace
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))


def seed_dpa(name: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((SEED / name).read_text())
    return manifest


def locations(kube: Kube, namespace: str, plural: str) -> dict[str, dict[str, Any]]:
    listing = kube.custom.list_namespaced_custom_object("velero.io", "v1", namespace, plural)
    return {item["metadata"]["name"]: item for item in listing["items"]}


def read_dpa(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        "oadp.openshift.io", "v1alpha1", namespace, "dataprotectionapplications", name
    )
    return body


def reconciled(dpa: dict[str, Any]) -> dict[str, Any]:
    (condition,) = [c for c in dpa.get("status", {}).get("conditions", ()) if c["type"] == "Reconciled"]
    return condition


async def reconcile(sandbox: Sandbox, namespace: str, name: str, clock: Clock) -> DpaOutcome:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as api:
        res = (await api.discover()).find("oadp.openshift.io", "dataprotectionapplications")
        assert res is not None
        body = await api.get(res, name, namespace)
        assert body is not None
        return await DpaReconciler(api, namespace, clock=clock).reconcile(body)


# -- the guide's examples ---------------------------------------------------


@pytest.mark.parametrize("file", sorted(SEED_DPAS))
@run_async
async def test_seed_dpa_with_its_secrets_creates_its_locations(
    file: str, sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    secrets, bsl_names, vsl_names = SEED_DPAS[file]
    for secret, provider in secrets.items():
        create_secret(kube, ns, secret, CONTENT[provider])
    manifest = seed_dpa(file)
    name = manifest["metadata"]["name"]
    apply_dpa(sandbox, ns, manifest)

    outcome = await reconcile(sandbox, ns, name, clock)

    assert outcome.errors == ()
    dpa = read_dpa(kube, ns, name)
    condition = reconciled(dpa)
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "True",
        "Complete",
        "Reconcile complete",
    )
    assert condition["observedGeneration"] == dpa["metadata"]["generation"]
    bsls, vsls = locations(kube, ns, "backupstoragelocations"), locations(kube, ns, "volumesnapshotlocations")
    assert sorted(bsls) == sorted(bsl_names)
    assert sorted(vsls) == sorted(vsl_names)
    owner = {
        "apiVersion": "oadp.openshift.io/v1alpha1",
        "kind": "DataProtectionApplication",
        "name": name,
        "uid": dpa["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for index, location_name in enumerate(bsl_names):
        bsl = bsls[location_name]
        wanted = manifest["spec"]["backupLocations"][index]["velero"]
        assert bsl["metadata"]["ownerReferences"] == [owner]
        assert bsl["metadata"]["labels"]["app.kubernetes.io/component"] == "bsl"
        assert bsl["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "oadp-operator"
        assert bsl["spec"]["provider"] == wanted["provider"]
        assert bsl["spec"]["objectStorage"] == wanted["objectStorage"]
        assert bsl["spec"].get("config") == wanted.get("config")
        assert bsl["spec"]["default"] is True
        # The effective credential: the one named, else the provider's default Secret.
        expected_secret = (wanted.get("credential") or {}).get("name") or {
            "aws": "cloud-credentials",
            "gcp": "cloud-credentials-gcp",
            "azure": "cloud-credentials-azure",
        }[wanted["provider"]]
        assert bsl["spec"]["credential"] == {"name": expected_secret, "key": "cloud"}
    for index, location_name in enumerate(vsl_names):
        vsl = vsls[location_name]
        wanted = manifest["spec"]["snapshotLocations"][index]["velero"]
        assert vsl["metadata"]["ownerReferences"] == [owner]
        assert vsl["metadata"]["labels"]["app.kubernetes.io/component"] == "vsl"
        assert vsl["spec"]["provider"] == wanted["provider"]
        assert vsl["spec"]["config"] == wanted["config"]
        assert "default" not in vsl["spec"] and "name" not in vsl["spec"]
    assert outcome.backup_locations == tuple(bsl_names)
    assert outcome.restic_enabled == bool(manifest["spec"]["configuration"].get("restic", {}).get("enable"))


@run_async
async def test_log_level_and_plugins_reach_the_outcome(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    apply_dpa(sandbox, ns, seed_dpa("dpa-1517-log-level.yaml"))
    outcome = await reconcile(sandbox, ns, "velero-sample", clock)
    assert (outcome.log_level, outcome.plugins, outcome.restic_enabled) == (
        "warning",
        ("openshift", "aws"),
        False,
    )
    assert outcome.feature_flags == ()


@run_async
async def test_csi_plugin_turns_on_enable_csi(sandbox: Sandbox, kube: Kube, ns: str, clock: Clock) -> None:
    create_secret(kube, ns, "cloud-credentials-gcp", GCP_CREDENTIALS)
    apply_dpa(sandbox, ns, seed_dpa("dpa-1207-csi-gcp.yaml"))
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)
    assert (outcome.plugins, outcome.feature_flags, outcome.restic_enabled) == (
        ("gcp", "csi", "openshift"),
        ("EnableCSI",),
        True,
    )


@run_async
async def test_second_reconcile_writes_nothing(sandbox: Sandbox, kube: Kube, ns: str, clock: Clock) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    apply_dpa(sandbox, ns, seed_dpa("dpa-0403-aws.yaml"))
    first = await reconcile(sandbox, ns, "dpa-sample", clock)
    assert first.ok and first.writes > 0

    def versions() -> dict[str, str]:
        found = {
            f"bsl/{n}": b["metadata"]["resourceVersion"]
            for n, b in locations(kube, ns, "backupstoragelocations").items()
        }
        found |= {
            f"vsl/{n}": b["metadata"]["resourceVersion"]
            for n, b in locations(kube, ns, "volumesnapshotlocations").items()
        }
        found["dpa"] = read_dpa(kube, ns, "dpa-sample")["metadata"]["resourceVersion"]
        found["secret"] = kube.core.read_namespaced_secret("cloud-credentials", ns).metadata.resource_version
        return found

    before = versions()
    clock.advance()
    second = await reconcile(sandbox, ns, "dpa-sample", clock)
    assert (second.ok, second.writes) == (True, 0)
    assert versions() == before


# -- bad input ----------------------------------------------------------------


@run_async
async def test_missing_secret_is_named_and_nothing_is_created(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    apply_dpa(sandbox, ns, seed_dpa("dpa-0403-aws.yaml"))
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)

    condition = reconciled(read_dpa(kube, ns, "dpa-sample"))
    assert (condition["status"], condition["reason"]) == ("False", "Error")
    assert f"secret 'cloud-credentials' not found in namespace {ns}" in condition["message"]
    assert (
        f"oc create secret generic cloud-credentials -n {ns} --from-file cloud=credentials-velero"
        in condition["message"]
    )
    assert outcome.errors and not outcome.ok
    assert locations(kube, ns, "backupstoragelocations") == {}
    assert locations(kube, ns, "volumesnapshotlocations") == {}


@run_async
async def test_malformed_credentials_name_the_line_and_never_a_value(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    create_secret(
        kube, ns, "cloud-credentials", "[default]\naws_access_key_id=AKIASEEDEXAMPLE0\nSeedSecretValue0\n"
    )
    apply_dpa(sandbox, ns, seed_dpa("dpa-0403-aws.yaml"))
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)

    message = reconciled(read_dpa(kube, ns, "dpa-sample"))["message"]
    assert "secret 'cloud-credentials', key 'cloud', line 3: expected 'name = value'" in message
    assert not any(marker in message for marker in SECRET_MARKERS)
    assert not any(marker in error for error in outcome.errors for marker in SECRET_MARKERS)
    assert locations(kube, ns, "backupstoragelocations") == {}


@run_async
async def test_missing_profile_and_key_are_named(sandbox: Sandbox, kube: Kube, ns: str, clock: Clock) -> None:
    create_secret(kube, ns, "cloud-credentials", "[default]\naws_access_key_id=a\naws_secret_access_key=b\n")
    apply_dpa(sandbox, ns, seed_dpa("dpa-0353-aws-profiles.yaml"))
    await reconcile(sandbox, ns, "dpa-sample", clock)
    message = reconciled(read_dpa(kube, ns, "dpa-sample"))["message"]
    assert (
        "spec.backupLocations[0]: secret 'cloud-credentials', key 'cloud': profile 'backupStorage' not found"
        in (message)
    )
    assert (
        "spec.snapshotLocations[0]: secret 'cloud-credentials', key 'cloud': profile 'volumeSnapshot' not found"
        in (message)
    )

    kube.core.delete_namespaced_secret("cloud-credentials", ns)
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS, key="credentials")
    await reconcile(sandbox, ns, "dpa-sample", clock)
    message = reconciled(read_dpa(kube, ns, "dpa-sample"))["message"]
    assert "secret 'cloud-credentials' has no data for key 'cloud' (its keys: credentials)" in message


@run_async
async def test_unknown_plugin_then_fixed(sandbox: Sandbox, kube: Kube, ns: str, clock: Clock) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    manifest = seed_dpa("dpa-0403-aws.yaml")
    manifest["spec"]["configuration"]["velero"]["defaultPlugins"] = ["openshift", "aws", "foo"]
    apply_dpa(sandbox, ns, manifest)
    await reconcile(sandbox, ns, "dpa-sample", clock)

    failed = reconciled(read_dpa(kube, ns, "dpa-sample"))
    assert (failed["status"], failed["reason"]) == ("False", "Error")
    assert failed["message"] == (
        'spec.configuration.velero.defaultPlugins[2]: unknown plugin "foo"; '
        "valid: aws, legacy-aws, gcp, azure, csi, openshift, kubevirt, hypershift"
    )
    assert failed["lastTransitionTime"] == "2024-07-01T10:00:00Z"
    assert locations(kube, ns, "backupstoragelocations") == {}

    clock.advance()
    await reconcile(sandbox, ns, "dpa-sample", clock)  # still wrong: the transition time stays
    assert reconciled(read_dpa(kube, ns, "dpa-sample"))["lastTransitionTime"] == "2024-07-01T10:00:00Z"

    manifest["spec"]["configuration"]["velero"]["defaultPlugins"] = ["openshift", "aws"]
    apply_dpa(sandbox, ns, manifest)
    clock.advance()
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)

    dpa = read_dpa(kube, ns, "dpa-sample")
    fixed = reconciled(dpa)
    assert (fixed["status"], fixed["reason"], fixed["message"]) == ("True", "Complete", "Reconcile complete")
    assert fixed["lastTransitionTime"] == "2024-07-01T10:10:00Z"
    assert fixed["observedGeneration"] == dpa["metadata"]["generation"] == 2
    assert outcome.ok
    assert sorted(locations(kube, ns, "backupstoragelocations")) == ["default"]
    assert sorted(locations(kube, ns, "volumesnapshotlocations")) == ["default"]


@run_async
async def test_an_invalid_change_leaves_the_locations_alone(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    manifest = seed_dpa("dpa-0403-aws.yaml")
    apply_dpa(sandbox, ns, manifest)
    assert (await reconcile(sandbox, ns, "dpa-sample", clock)).ok
    before = locations(kube, ns, "backupstoragelocations")

    manifest["spec"]["backupLocations"][0]["velero"]["objectStorage"]["bucket"] = "other-bucket"
    manifest["spec"]["configuration"]["velero"]["logLevel"] = "loud"
    apply_dpa(sandbox, ns, manifest)
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)

    assert outcome.errors == (
        'spec.configuration.velero.logLevel: invalid log level "loud", use: trace, debug, info, warning, error, '
        "fatal, or panic",
    )
    assert locations(kube, ns, "backupstoragelocations") == before


@run_async
async def test_removing_a_location_deletes_the_owned_one(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    manifest = seed_dpa("dpa-0403-aws.yaml")
    second = json.loads(json.dumps(manifest["spec"]["backupLocations"][0]))
    second["name"] = "secondary"
    second["velero"]["default"] = False
    second["velero"]["objectStorage"]["bucket"] = "second-bucket"
    manifest["spec"]["backupLocations"].append(second)
    apply_dpa(sandbox, ns, manifest)
    # A location nobody owns, labelled like OADP's: not the DPA's to delete.
    kube.custom.create_namespaced_custom_object(
        "velero.io",
        "v1",
        ns,
        "backupstoragelocations",
        {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation",
            "metadata": {
                "name": "hand-made",
                "labels": {
                    "app.kubernetes.io/component": "bsl",
                    "app.kubernetes.io/managed-by": "oadp-operator",
                    "app.kubernetes.io/name": "oadp-operator-velero",
                },
            },
            "spec": {"provider": "aws", "objectStorage": {"bucket": "b"}},
        },
    )
    assert (await reconcile(sandbox, ns, "dpa-sample", clock)).ok
    assert sorted(locations(kube, ns, "backupstoragelocations")) == ["default", "hand-made", "secondary"]

    manifest["spec"]["backupLocations"].pop()
    manifest["spec"]["snapshotLocations"] = []
    apply_dpa(sandbox, ns, manifest)
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)

    assert outcome.ok and outcome.backup_locations == ("default",)
    assert sorted(locations(kube, ns, "backupstoragelocations")) == ["default", "hand-made"]
    assert locations(kube, ns, "volumesnapshotlocations") == {}


@run_async
async def test_a_changed_location_is_updated_in_place(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    manifest = seed_dpa("dpa-0403-aws.yaml")
    apply_dpa(sandbox, ns, manifest)
    assert (await reconcile(sandbox, ns, "dpa-sample", clock)).ok
    uid = locations(kube, ns, "backupstoragelocations")["default"]["metadata"]["uid"]

    manifest["spec"]["backupLocations"][0]["velero"]["objectStorage"]["prefix"] = "elsewhere"
    apply_dpa(sandbox, ns, manifest)
    assert (await reconcile(sandbox, ns, "dpa-sample", clock)).ok

    bsl = locations(kube, ns, "backupstoragelocations")["default"]
    assert (bsl["metadata"]["uid"], bsl["spec"]["objectStorage"]["prefix"]) == (uid, "elsewhere")


@run_async
async def test_a_location_controlled_by_someone_else_is_not_taken(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    # A real owner: the garbage collector removes objects whose owner does not exist.
    other = kube.core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other"))
    )
    kube.custom.create_namespaced_custom_object(
        "velero.io",
        "v1",
        ns,
        "backupstoragelocations",
        {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation",
            "metadata": {
                "name": "default",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "other",
                        "uid": other.metadata.uid,
                        "controller": True,
                    }
                ],
            },
            "spec": {"provider": "aws", "objectStorage": {"bucket": "theirs"}},
        },
    )
    apply_dpa(sandbox, ns, seed_dpa("dpa-0403-aws.yaml"))
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)

    assert not outcome.ok
    assert (
        "BackupStorageLocation 'default' already exists and is controlled by ConfigMap 'other'"
        in outcome.errors[0]
    )
    assert (
        locations(kube, ns, "backupstoragelocations")["default"]["spec"]["objectStorage"]["bucket"]
        == "theirs"
    )
    assert locations(kube, ns, "volumesnapshotlocations") == {}


def test_deleting_the_dpa_deletes_its_locations(sandbox: Sandbox, kube: Kube, ns: str, clock: Clock) -> None:
    create_secret(kube, ns, "cloud-credentials", AWS_CREDENTIALS)
    apply_dpa(sandbox, ns, seed_dpa("dpa-0403-aws.yaml"))
    run_async(reconcile)(sandbox, ns, "dpa-sample", clock)
    assert sorted(locations(kube, ns, "backupstoragelocations")) == ["default"]

    kube.custom.delete_namespaced_custom_object(
        "oadp.openshift.io", "v1alpha1", ns, "dataprotectionapplications", "dpa-sample"
    )

    def gone() -> bool:
        try:
            return locations(kube, ns, "backupstoragelocations") == {} and (
                locations(kube, ns, "volumesnapshotlocations") == {}
            )
        except ApiException:
            return False

    eventually(gone, timeout=30)


def node_agent(namespace: str) -> dict[str, Any]:
    labels = {"name": "node-agent"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsUser": 0},
                    "containers": [{"name": "node-agent", "image": "registry.example.com/agent:1"}],
                },
            },
        },
    }


@run_async
async def test_restic_supplemental_groups_reach_the_node_agent(
    sandbox: Sandbox, kube: Kube, ns: str, clock: Clock
) -> None:
    """The guide's root_squash NFS case: the node agent runs with the DPA's supplemental groups."""
    create_secret(kube, ns, "cloud-credentials-gcp", GCP_CREDENTIALS)
    manifest = seed_dpa("dpa-1207-csi-gcp.yaml")
    manifest["spec"]["configuration"]["restic"]["supplementalGroups"] = [5555, 6666]
    apply_dpa(sandbox, ns, manifest)
    # Without a node agent installed the locations are still reconciled.
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)
    assert outcome.errors == ()
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump(node_agent(ns)))
    outcome = await reconcile(sandbox, ns, "dpa-sample", clock)
    assert outcome.errors == ()
    daemonset = sandbox.kubectl_json("get", "daemonset", "node-agent", "-n", ns)
    context = daemonset["spec"]["template"]["spec"]["securityContext"]
    assert context == {"runAsUser": 0, "supplementalGroups": [5555, 6666]}
    again = await reconcile(sandbox, ns, "dpa-sample", clock)
    assert again.writes == 0
    manifest["spec"]["configuration"]["restic"].pop("supplementalGroups")
    apply_dpa(sandbox, ns, manifest)
    await reconcile(sandbox, ns, "dpa-sample", clock)
    daemonset = sandbox.kubectl_json("get", "daemonset", "node-agent", "-n", ns)
    assert "supplementalGroups" not in daemonset["spec"]["template"]["spec"]["securityContext"]
