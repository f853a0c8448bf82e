"""The DataProtectionApplication model and its checks: each mistake gives a message naming its field."""

from __future__ import annotations

import base64
import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from strongroom.model.oadp import (
    CredentialUse,
    DataProtectionApplication,
    credential_uses,
    dpa_problems,
    effective_feature_flags,
    effective_log_level,
    parse_quantity,
    restic_enabled,
)

SEED = Path(__file__).resolve().parents[2] / "data" / "seed"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def base_dpa() -> dict[str, Any]:
    return {
        "apiVersion": "oadp.openshift.io/v1alpha1",
        "kind": "DataProtectionApplication",
        "metadata": {"name": "dpa-sample", "namespace": "openshift-adp"},
        "spec": {
            "configuration": {"velero": {"defaultPlugins": ["openshift", "aws"]}, "restic": {"enable": True}},
            "backupLocations": [
                {
                    "name": "default",
                    "velero": {
                        "provider": "aws",
                        "default": True,
                        "objectStorage": {"bucket": "velero-bucket", "prefix": "velero"},
                        "config": {"region": "us-east-1", "profile": "default"},
                        "credential": {"key": "cloud", "name": "cloud-credentials"},
                    },
                }
            ],
            "snapshotLocations": [
                {"name": "default", "velero": {"provider": "aws", "config": {"region": "us-west-2"}}}
            ],
        },
    }


def problems_of(manifest: dict[str, Any]) -> list[str]:
    return dpa_problems(manifest)[1]


def velero(manifest: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = manifest["spec"]["configuration"]["velero"]
    return result


def bsl(manifest: dict[str, Any], index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = manifest["spec"]["backupLocations"][index]["velero"]
    return result


@pytest.mark.parametrize("path", sorted(SEED.glob("dpa-*.yaml")), ids=lambda path: path.name)
def test_every_seed_dpa_is_valid(path: Path) -> None:
    assert problems_of(yaml.safe_load(path.read_text())) == []


def test_the_guides_verbatim_log_level_fragment_needs_a_location_as_in_oadp() -> None:
    fragment = yaml.safe_load(
        "apiVersion: oadp.openshift.io/v1alpha1\nkind: DataProtectionApplication\n"
        "metadata: {name: velero-sample}\nspec: {configuration: {velero: {logLevel: warning}}}\n"
    )
    assert problems_of(fragment) == [
        "spec.backupLocations: no backupstoragelocations configured, ensure a backupstoragelocation has been "
        "configured or use the noDefaultBackupLocation flag (spec.configuration.velero.noDefaultBackupLocation: true)"
    ]


def test_no_default_backup_location_needs_backup_images_off_and_no_locations() -> None:
    manifest = base_dpa()
    velero(manifest)["noDefaultBackupLocation"] = True
    assert problems_of(manifest) == [
        "spec.backupLocations: DPA CR Velero configuration cannot have backup locations if noDefaultBackupLocation is set",
        "spec.backupImages: backupImages needs to be set to false when noDefaultBackupLocation is set",
    ]
    manifest["spec"]["backupLocations"] = []
    manifest["spec"]["backupImages"] = False
    assert problems_of(manifest) == []


def test_a_valid_dpa_has_no_problems() -> None:
    assert problems_of(base_dpa()) == []


def test_unknown_plugin_names_its_index_and_the_valid_ones() -> None:
    manifest = base_dpa()
    velero(manifest)["defaultPlugins"] = ["openshift", "aws", "foo"]
    assert problems_of(manifest) == [
        'spec.configuration.velero.defaultPlugins[2]: unknown plugin "foo"; '
        "valid: aws, legacy-aws, gcp, azure, csi, openshift, kubevirt, hypershift"
    ]


def test_vsm_plugin_gets_oadps_upgrade_message() -> None:
    manifest = base_dpa()
    velero(manifest)["defaultPlugins"] = ["openshift", "aws", "vsm"]
    (problem,) = problems_of(manifest)
    assert problem.startswith("spec.configuration.velero.defaultPlugins[2]: Delete vsm from")


def test_duplicate_and_conflicting_plugins() -> None:
    manifest = base_dpa()
    velero(manifest)["defaultPlugins"] = ["openshift", "aws", "legacy-aws", "openshift"]
    velero(manifest)["customPlugins"] = [{"name": "aws", "image": "quay.io/x/y"}]
    assert problems_of(manifest) == [
        'spec.configuration.velero.defaultPlugins[3]: plugin "openshift" is listed twice '
        "(also spec.configuration.velero.defaultPlugins[0])",
        "spec.configuration.velero.defaultPlugins: aws and legacy-aws can not be both specified in "
        "DPA spec.configuration.velero.defaultPlugins",
        'spec.configuration.velero.customPlugins[0].name: plugin "aws" is listed twice '
        "(also spec.configuration.velero.defaultPlugins[1])",
    ]


def test_custom_plugin_needs_name_and_image() -> None:
    manifest = base_dpa()
    velero(manifest)["customPlugins"] = [{"image": "quay.io/example/plugin"}, {"name": "mine"}]
    assert problems_of(manifest) == [
        "spec.configuration.velero.customPlugins[0].name: required: the plugin's name",
        "spec.configuration.velero.customPlugins[1].image: required: the plugin's container image",
    ]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ({"name": "x"}, "spec.backupLocations[0]: BackupLocation must have velero or bucket configuration"),
        (
            {"velero": {"provider": "aws"}, "bucket": {"cloudStorageRef": {"name": "b"}}},
            "spec.backupLocations[0]: cannot have both velero and bucket provided for a single backup location; keep one",
        ),
    ],
)
def test_backup_location_needs_exactly_one_of_velero_and_bucket(
    location: dict[str, Any], expected: str
) -> None:
    manifest = base_dpa()
    manifest["spec"]["backupLocations"] = [location]
    assert expected in problems_of(manifest)


def test_missing_provider_and_bucket_are_named() -> None:
    manifest = base_dpa()
    del bsl(manifest)["provider"]
    bsl(manifest)["objectStorage"] = {"prefix": "velero"}
    problems = problems_of(manifest)
    assert (
        "spec.backupLocations[0].velero.provider: no provider specified; valid: aws, azure, gcp" in problems
    )
    assert (
        "spec.backupLocations[0].velero.objectStorage.bucket: bucket name for the backupstoragelocation "
        "cannot be empty"
    ) in problems


def test_unknown_provider_is_named() -> None:
    manifest = base_dpa()
    bsl(manifest)["provider"] = "dropbox"
    assert 'spec.backupLocations[0].velero.provider: invalid provider "dropbox"; valid: aws, azure, gcp' in (
        problems_of(manifest)
    )


def test_missing_object_storage_names_the_provider() -> None:
    manifest = base_dpa()
    del bsl(manifest)["objectStorage"]
    assert problems_of(manifest) == [
        "spec.backupLocations[0].velero.objectStorage: object storage configuration for AWS "
        "backupstoragelocation cannot be nil"
    ]


def test_prefix_is_required_while_images_are_backed_up() -> None:
    manifest = base_dpa()
    bsl(manifest)["objectStorage"] = {"bucket": "b"}
    (problem,) = problems_of(manifest)
    assert problem.startswith("spec.backupLocations[0].velero.objectStorage.prefix: BackupLocation must have")
    manifest["spec"]["backupImages"] = False
    assert problems_of(manifest) == []


def test_only_one_default_location() -> None:
    manifest = base_dpa()
    second = copy.deepcopy(manifest["spec"]["backupLocations"][0])
    second["name"] = "second"
    manifest["spec"]["backupLocations"].append(second)
    assert problems_of(manifest) == [
        "spec.backupLocations: Only one Storage Location be set as default; these are: "
        "spec.backupLocations[0], spec.backupLocations[1]"
    ]


def test_some_location_must_be_the_default() -> None:
    manifest = base_dpa()
    bsl(manifest)["default"] = False
    manifest["spec"]["backupLocations"][0]["name"] = "main"
    (problem,) = problems_of(manifest)
    assert problem.startswith("spec.backupLocations: no default backupstoragelocations configured")


def test_location_named_default_must_be_the_default() -> None:
    manifest = base_dpa()
    bsl(manifest)["default"] = False
    assert (
        "spec.backupLocations[0].velero.default: Storage location named 'default' must be set as default"
        in (problems_of(manifest))
    )


def test_two_locations_with_one_name_are_refused() -> None:
    manifest = base_dpa()
    other = dict(bsl(manifest), default=False)
    # The third entry has no name, so it becomes dpa-sample-3: the name the second one took.
    manifest["spec"]["backupLocations"] += [{"name": "dpa-sample-3", "velero": other}, {"velero": other}]
    assert problems_of(manifest) == [
        'spec.backupLocations[2]: BackupStorageLocation name "dpa-sample-3" is used twice '
        "(also by spec.backupLocations[1])"
    ]


@pytest.mark.parametrize(
    ("ca_cert", "message"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"just text").decode(), "decodes to no PEM certificate"),
    ],
)
def test_ca_cert_must_be_base64_pem(ca_cert: str, message: str) -> None:
    manifest = base_dpa()
    bsl(manifest)["objectStorage"]["caCert"] = ca_cert
    (problem,) = problems_of(manifest)
    assert problem.startswith("spec.backupLocations[0].velero.objectStorage.caCert: ")
    assert message in problem


def test_a_base64_pem_ca_cert_is_accepted() -> None:
    manifest = base_dpa()
    bsl(manifest)["objectStorage"]["caCert"] = base64.b64encode(PEM).decode()
    assert problems_of(manifest) == []


def test_insecure_skip_tls_verify_must_be_a_boolean_string() -> None:
    manifest = base_dpa()
    bsl(manifest)["config"]["insecureSkipTLSVerify"] = "yes"
    assert problems_of(manifest) == [
        'spec.backupLocations[0].velero.config.insecureSkipTLSVerify: must be "true" or "false", not "yes"'
    ]


def test_path_style_s3_needs_a_region() -> None:
    manifest = base_dpa()
    bsl(manifest)["config"] = {"s3ForcePathStyle": "true", "s3Url": "http://minio:9000"}
    (problem,) = problems_of(manifest)
    assert problem.startswith("spec.backupLocations[0].velero.config.region: region for AWS")


def test_azure_location_needs_resource_group_and_storage_account() -> None:
    manifest = base_dpa()
    velero(manifest)["defaultPlugins"] = ["openshift", "azure"]
    manifest["spec"]["snapshotLocations"] = []
    bsl(manifest).update(provider="azure", config={})
    assert problems_of(manifest) == [
        "spec.backupLocations[0].velero.config.resourceGroup: resourceGroup for Azure backupstoragelocation "
        "config cannot be empty",
        "spec.backupLocations[0].velero.config.storageAccount: storageAccount for Azure backupstoragelocation "
        "config cannot be empty",
    ]


def test_bad_durations_and_access_mode_are_named() -> None:
    manifest = base_dpa()
    bsl(manifest).update(backupSyncPeriod="1 minute", accessMode="WriteOnly")
    assert problems_of(manifest) == [
        'spec.backupLocations[0].velero.accessMode: invalid access mode "WriteOnly"; valid: ReadWrite, ReadOnly',
        'spec.backupLocations[0].velero.backupSyncPeriod: time: unknown unit " minute" in duration "1 minute"',
    ]


@pytest.mark.parametrize("level", ["verbose", "warn ing", "10"])
def test_invalid_log_level(level: str) -> None:
    manifest = base_dpa()
    velero(manifest)["logLevel"] = level
    assert problems_of(manifest) == [
        f'spec.configuration.velero.logLevel: invalid log level "{level}", use: '
        "trace, debug, info, warning, error, fatal, or panic"
    ]


@pytest.mark.parametrize(
    ("level", "effective"), [("warning", "warning"), ("WARN", "warning"), ("trace", "trace")]
)
def test_log_level_is_normalised_like_logrus(level: str, effective: str) -> None:
    manifest = base_dpa()
    velero(manifest)["logLevel"] = level
    dpa, problems = dpa_problems(manifest)
    assert problems == []
    assert dpa is not None and effective_log_level(dpa) == effective


def test_log_level_defaults_to_info() -> None:
    assert effective_log_level(DataProtectionApplication.from_manifest(base_dpa())) == "info"


def test_malformed_resource_quantities_are_named() -> None:
    manifest = base_dpa()
    velero(manifest)["podConfig"] = {
        "resourceAllocations": {"limits": {"cpu": "1 core", "memory": "512MB"}, "requests": {"cpu": "500m"}}
    }
    problems = problems_of(manifest)
    assert [problem.split(":")[0] for problem in problems] == [
        "spec.configuration.velero.podConfig.resourceAllocations.limits.cpu",
        "spec.configuration.velero.podConfig.resourceAllocations.limits.memory",
    ]
    assert "invalid quantity '1 core'" in problems[0]
    assert "unknown suffix 'MB'" in problems[1]


def test_request_above_its_limit_is_refused() -> None:
    manifest = base_dpa()
    manifest["spec"]["configuration"]["restic"]["podConfig"] = {
        "resourceAllocations": {"limits": {"memory": "256Mi"}, "requests": {"memory": "1Gi"}}
    }
    assert problems_of(manifest) == [
        'spec.configuration.restic.podConfig.resourceAllocations.requests.memory: "1Gi" is more than the limit '
        '"256Mi"; a request must not exceed its limit'
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("256Mi", Decimal(256 * 2**20)),
        ("1.5Gi", Decimal("1.5") * 2**30),
        ("1e3", Decimal(1000)),
        ("2k", Decimal(2000)),
        ("0.1", Decimal("0.1")),
    ],
)
def test_quantities_parse_like_kubernetes(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1 ", "1K", "1mi", "Mi", "1.2.3", "--1", "1Gib"])
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


def test_integer_quantities_are_accepted_as_yaml_writes_them() -> None:
    manifest = base_dpa()
    velero(manifest)["podConfig"] = {"resourceAllocations": {"limits": {"cpu": 2}, "requests": {"cpu": 1}}}
    assert problems_of(manifest) == []


@pytest.mark.parametrize("group", ["abc", "5", 1.5, True])
def test_supplemental_groups_must_be_integers(group: object) -> None:
    manifest = base_dpa()
    manifest["spec"]["configuration"]["restic"]["supplementalGroups"] = [5000, group]
    dpa, problems = dpa_problems(manifest)
    assert dpa is None
    assert problems == [
        f"spec.configuration.restic.supplementalGroups[1]: must be an integer group ID, not {group!r}"
    ]


def test_supplemental_groups_are_not_negative() -> None:
    manifest = base_dpa()
    manifest["spec"]["configuration"]["restic"]["supplementalGroups"] = [-1]
    assert problems_of(manifest) == [
        "spec.configuration.restic.supplementalGroups[0]: group IDs are not negative, not -1"
    ]


def test_restic_and_node_agent_cannot_both_be_set_and_node_agent_needs_an_uploader() -> None:
    manifest = base_dpa()
    manifest["spec"]["configuration"]["nodeAgent"] = {"enable": True}
    assert problems_of(manifest) == [
        "spec.configuration.restic: restic and nodeAgent cannot both be set; "
        "move the restic settings to spec.configuration.nodeAgent",
        "spec.configuration.nodeAgent.uploaderType: required; valid: restic, kopia",
    ]


def test_restic_enabled_reads_restic_or_node_agent() -> None:
    manifest = base_dpa()
    assert restic_enabled(DataProtectionApplication.from_manifest(manifest))
    del manifest["spec"]["configuration"]["restic"]
    assert not restic_enabled(DataProtectionApplication.from_manifest(manifest))
    manifest["spec"]["configuration"]["nodeAgent"] = {"enable": True, "uploaderType": "restic"}
    assert restic_enabled(DataProtectionApplication.from_manifest(manifest))


def test_snapshot_location_rules_follow_oadp() -> None:
    manifest = base_dpa()
    manifest["spec"]["snapshotLocations"] = [
        {"velero": {"config": {"region": "x"}}},
        {"velero": {"provider": "aws", "config": {"zone": "a"}}},
        {"velero": {"provider": "gcp", "config": {"project": "p"}}},
        {"velero": {"provider": "openstack"}},
        {"name": "no-velero"},
    ]
    assert problems_of(manifest) == [
        "spec.snapshotLocations[0].velero.provider: no provider specified; valid: aws, azure, gcp",
        "spec.snapshotLocations[1].velero.config.region: region for aws VSL in DPA spec.snapshotLocations[1].velero"
        ".config is not configured, please ensure a region is configured",
        "spec.snapshotLocations[1].velero.config.zone: DPA spec.snapshotLocations[1].velero.config key zone is not "
        "a valid aws config key; valid: profile, region, credentialsFile, enableSharedConfig",
        "spec.snapshotLocations[2].velero.provider: to use VSL for gcp specified in DPA spec.snapshotLocations[2], "
        "gcp plugin must be present in spec.configuration.velero.defaultPlugins",
        "spec.snapshotLocations[3].velero.provider: DPA spec.snapshotLocations[3].velero.provider openstack is "
        "invalid: only aws, gcp and azure are supported",
        "spec.snapshotLocations[4].velero: snapshotLocation velero configuration cannot be nil",
    ]


def test_missing_velero_configuration() -> None:
    manifest = base_dpa()
    del manifest["spec"]["configuration"]
    assert problems_of(manifest) == ["spec.configuration.velero: DPA CR Velero configuration cannot be nil"]


def test_empty_credential_name_is_named() -> None:
    manifest = base_dpa()
    bsl(manifest)["credential"] = {"key": "cloud", "name": ""}
    assert problems_of(manifest) == [
        "spec.backupLocations[0].velero.credential.name: secret name specified for location cannot be empty"
    ]


def test_csi_plugin_turns_on_enable_csi_once() -> None:
    manifest = base_dpa()
    velero(manifest).update(defaultPlugins=["openshift", "csi"], featureFlags=["EnableCSI"])
    manifest["spec"]["snapshotLocations"] = []
    dpa = DataProtectionApplication.from_manifest(manifest)
    assert effective_feature_flags(dpa) == ["EnableCSI"]
    velero(manifest)["featureFlags"] = []
    assert effective_feature_flags(DataProtectionApplication.from_manifest(manifest)) == ["EnableCSI"]


def test_wrong_api_version_is_named() -> None:
    manifest = base_dpa()
    manifest["apiVersion"] = "velero.io/v1"
    assert problems_of(manifest) == [
        "apiVersion: expected apiVersion 'oadp.openshift.io/v1alpha1', got 'velero.io/v1'"
    ]


def test_unknown_fields_survive_a_round_trip() -> None:
    manifest = base_dpa()
    manifest["spec"]["someFutureField"] = {"a": 1}
    bsl(manifest)["futureSetting"] = "x"
    out = DataProtectionApplication.from_manifest(manifest).to_manifest()
    assert out["spec"]["someFutureField"] == {"a": 1}
    assert out["spec"]["backupLocations"][0]["velero"]["futureSetting"] == "x"
    assert out["spec"]["configuration"]["velero"]["defaultPlugins"] == ["openshift", "aws"]


def test_go_json_names_that_are_not_camel_case() -> None:
    manifest = base_dpa()
    velero(manifest).update({"defaultVolumesToFSBackup": True, "client-burst": 5, "client-qps": 3})
    dpa = DataProtectionApplication.from_manifest(manifest)
    assert dpa.velero.default_volumes_to_fs_backup is True
    assert (dpa.velero.client_burst, dpa.velero.client_qps) == (5, 3)
    assert velero(dpa.to_manifest())["client-burst"] == 5


# -- which Secrets the locations use -----------------------------------------


def test_credentials_default_per_provider_with_profiles() -> None:
    manifest = base_dpa()
    del bsl(manifest)["credential"]
    bsl(manifest)["config"]["profile"] = "backupStorage"
    manifest["spec"]["snapshotLocations"][0]["velero"]["config"]["profile"] = "volumeSnapshot"
    uses = credential_uses(DataProtectionApplication.from_manifest(manifest))
    assert uses == [
        CredentialUse("spec.backupLocations[0]", "aws", "cloud-credentials", "cloud", "backupStorage"),
        CredentialUse("spec.snapshotLocations[0]", "aws", "cloud-credentials", "cloud", "volumeSnapshot"),
    ]


@pytest.mark.parametrize(
    ("provider", "secret"), [("azure", "cloud-credentials-azure"), ("gcp", "cloud-credentials-gcp")]
)
def test_default_secret_of_azure_and_gcp(provider: str, secret: str) -> None:
    manifest = base_dpa()
    del bsl(manifest)["credential"]
    bsl(manifest).update(provider=f"velero.io/{provider}", config={})
    (use, *_) = credential_uses(DataProtectionApplication.from_manifest(manifest))
    assert (use.provider, use.secret, use.key) == (provider, secret, "cloud")


def test_credentials_file_config_overrides_the_credential() -> None:
    manifest = base_dpa()
    bsl(manifest)["config"]["credentialsFile"] = "other-secret/creds"
    (use, *_) = credential_uses(DataProtectionApplication.from_manifest(manifest))
    assert (use.secret, use.key) == ("other-secret", "creds")


def test_no_secret_feature_flag_skips_credentials() -> None:
    manifest = base_dpa()
    velero(manifest)["featureFlags"] = ["no-secret"]
    assert credential_uses(DataProtectionApplication.from_manifest(manifest)) == []
