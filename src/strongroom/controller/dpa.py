"""The DataProtectionApplication reconciler: a DPA in, owned locations and a ``Reconciled`` condition out.

An administrator following the OpenShift guide applies a DPA and waits for
``Reconciled: True``; when it is False, its message is the only place that
says what to fix. So everything is checked before anything is written: the
spec (:func:`strongroom.model.oadp.validate_dpa`) and the credentials Secrets
the locations will use (present, with the key, and parseable: an AWS file
with the profile the location names, Azure ``KEY=VALUE`` lines, a GCP
service-account JSON). Every problem found goes into the one message; an
invalid DPA changes no location at all.

A valid DPA becomes the BackupStorageLocations and VolumeSnapshotLocations
it lists, in its namespace, named as OADP names them (the entry's ``name``,
else ``<dpa>-<n>``), controlled by the DPA (so they go when it goes) and
labelled as OADP labels them; owned locations it no longer lists are deleted.
Unlike OADP, which mounts the default Secret into Velero's pod, strongroom's
server reads credentials through the location, so ``spec.credential`` is
always filled with the Secret and key in effect.

Credentials are secrets: messages name the Secret, key, profile, variable and
line, never a value.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from strongroom.deploy.manifests import NODE_AGENT_NAME, node_agent_security_context
from strongroom.errors import StorageConfigError, UsageError
from strongroom.kube import KubeClient
from strongroom.kube.errors import KubeError, KubeNotFound
from strongroom.model.oadp import (
    API_VERSION,
    CONDITION_RECONCILED,
    OADP_LABEL,
    REASON_COMPLETE,
    REASON_ERROR,
    RECONCILE_COMPLETE_MESSAGE,
    CredentialUse,
    DataProtectionApplication,
    backup_location_name,
    credential_uses,
    dpa_problems,
    effective_feature_flags,
    effective_log_level,
    provider_name,
    restic_enabled,
    snapshot_location_name,
)
from strongroom.model.resources import ApiResource
from strongroom.model.velero import API_VERSION as VELERO_API_VERSION
from strongroom.model.velero import format_timestamp
from strongroom.storage.credentials import parse_credentials

__all__ = ["DpaOutcome", "DpaReconciler", "check_credentials_content", "location_labels"]

_log = logging.getLogger(__name__)

# OADP's labels on the locations it manages (internal/controller/{bsl,vsl}.go).
_MANAGED_BY: Final = {
    "app.kubernetes.io/managed-by": "oadp-operator",
    "app.kubernetes.io/name": "oadp-operator-velero",
}
_REGISTRY_LABEL: Final = "openshift.io/oadp-registry"
_DPA_NAME_LABEL: Final = "dataprotectionapplication.name"


@dataclass(frozen=True)
class DpaOutcome:
    """What one reconcile decided, for the server: how to run, and whether the DPA is usable.

    ``errors`` is empty when the DPA is Reconciled; ``writes`` counts the
    objects created, replaced, patched or deleted (status included).
    """

    errors: tuple[str, ...]
    log_level: str = "info"
    restic_enabled: bool = False
    plugins: tuple[str, ...] = ()
    custom_plugins: tuple[tuple[str, str], ...] = ()
    feature_flags: tuple[str, ...] = ()
    backup_locations: tuple[str, ...] = ()
    snapshot_locations: tuple[str, ...] = ()
    writes: int = 0
    # A failed write (conflict, server unavailable): worth retrying, unlike a bad spec.
    transient: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def location_labels(name: str, component: str) -> dict[str, str]:
    """The labels OADP puts on a location it manages (component ``bsl`` or ``vsl``)."""
    return {
        **_MANAGED_BY,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        OADP_LABEL: "True",
    }


def check_credentials_content(use: CredentialUse, content: bytes) -> list[str]:
    """Problems with a credentials file for ``use``; each names the Secret and key (and line), no value."""
    source = f"secret {use.secret!r}, key {use.key!r}"
    try:
        if use.provider == "aws":
            parse_credentials(content, use.profile or "default", source=source)
        elif use.provider == "azure":
            from strongroom.storage.azure import parse_azure_credentials

            settings = parse_azure_credentials(content, source)
            wanted = [use.storage_account_key_env] if use.storage_account_key_env else []
            if settings.get("AZURE_CLIENT_SECRET"):
                wanted += ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"]
            missing = [key for key in wanted if not settings.get(key)]
            if missing:
                why = (
                    f" (config.storageAccountKeyEnvVar names {use.storage_account_key_env})"
                    if (use.storage_account_key_env in missing)
                    else ""
                )
                return [f"{source}: no value for {', '.join(missing)}{why}; add a line KEY=... for each"]
        elif use.provider == "gcp":
            from strongroom.storage.gcs import parse_gcp_credentials

            parse_gcp_credentials(content, source)
    except StorageConfigError as exc:
        return [str(exc)]
    return []


def _find_condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((item for item in conditions if isinstance(item, dict) and item.get("type") == kind), None)


class DpaReconciler:
    """Reconciles the DataProtectionApplications of one namespace (the server's)."""

    def __init__(
        self, kube: KubeClient, namespace: str, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._resources: dict[str, ApiResource] = {}

    async def _resource(self, group: str, resource: str) -> ApiResource:
        key = f"{resource}.{group}"
        found = self._resources.get(key)
        if found is None:
            found = (await self._kube.discover()).find(group, resource)
            if found is None:
                raise UsageError(
                    f"the cluster does not serve {key if group else resource}",
                    hint="install strongroom's custom resource definitions first: strongroom install",
                )
            self._resources[key] = found
        return found

    async def reconcile(self, dpa: dict[str, Any]) -> DpaOutcome:
        """Check ``dpa``, make its locations match when it is valid, and write its ``Reconciled`` condition.

        Idempotent: a second call with the same DPA and cluster writes nothing.
        A failed write is reported in the condition (``transient`` set); a
        failed read (Secrets, the DPA list) raises ``KubeError`` for the caller
        to retry, as does a cluster that does not serve the DPA's CRD.
        """
        metadata = dpa.get("metadata") or {}
        name = str(metadata.get("name") or "")
        model, errors = dpa_problems(dpa)
        outcome_fields: dict[str, Any] = {}
        if model is not None:
            velero = model.velero
            outcome_fields = {
                "log_level": effective_log_level(model),
                "restic_enabled": restic_enabled(model),
                "plugins": tuple(dict.fromkeys(velero.default_plugins or ())),
                "custom_plugins": tuple(
                    (plugin.name, plugin.image)
                    for plugin in velero.custom_plugins or ()
                    if plugin.name and plugin.image
                ),
                "feature_flags": tuple(effective_feature_flags(model)),
            }
            errors += await self._credential_problems(model)
            errors += await self._sibling_problems(name)
        writes = 0
        transient = False
        names: dict[str, tuple[str, ...]] = {}
        if not errors and model is not None:
            try:
                writes, names = await self._apply(dpa, model)
            except (KubeError, UsageError) as exc:
                errors.append(f"cannot update the locations: {exc}")
                transient = isinstance(exc, KubeError)
        if not errors and model is not None and restic_enabled(model):
            try:
                problem, patched = await self._sync_node_agent(model)
            except KubeError as exc:
                problem, patched = f"cannot update the node agent: {exc}", 0
                transient = True
            writes += patched
            if problem:
                # Not a reason to refuse the locations: backups of objects and CSI snapshots work without it.
                _log.warning("DataProtectionApplication %s/%s: %s", self._namespace, name, problem)
        writes += await self._write_condition(dpa, errors)
        if errors:
            _log.info(
                "DataProtectionApplication %s/%s is invalid: %s", self._namespace, name, "; ".join(errors)
            )
        return DpaOutcome(
            errors=tuple(errors),
            writes=writes,
            transient=transient,
            backup_locations=names.get("bsl", ()),
            snapshot_locations=names.get("vsl", ()),
            **outcome_fields,
        )

    async def _sync_node_agent(self, model: DataProtectionApplication) -> tuple[str | None, int]:
        """Give the node agent the DPA's supplemental groups (root_squash NFS); a problem, or the writes made."""
        daemonsets = await self._resource("apps", "daemonsets")
        agent = await self._kube.get(daemonsets, NODE_AGENT_NAME, self._namespace)
        if agent is None:
            return (
                "spec.configuration.restic.enable is true but no node agent is installed in namespace "
                f"{self._namespace}: run strongroom install --use-node-agent --namespace {self._namespace}",
                0,
            )
        configuration = model.spec.configuration
        groups: list[int] = []
        for settings in (configuration.node_agent, configuration.restic) if configuration else ():
            if settings is not None and settings.enable is True:
                groups = [int(group) for group in settings.supplemental_groups or ()]
                break
        desired = node_agent_security_context(groups)
        template = ((agent.get("spec") or {}).get("template") or {}).get("spec") or {}
        current = template.get("securityContext") or {}
        if current.get("supplementalGroups", []) == desired.get("supplementalGroups", []):
            return None, 0
        patch = {"spec": {"template": {"spec": {"securityContext": {"supplementalGroups": groups or None}}}}}
        await self._kube.patch(daemonsets, NODE_AGENT_NAME, patch, self._namespace)
        _log.info("node agent supplemental groups set to %s", groups or "none")
        return None, 1

    # -- checks ---------------------------------------------------------------

    async def _credential_problems(self, model: DataProtectionApplication) -> list[str]:
        problems: list[str] = []
        secrets = await self._resource("", "secrets")
        cache: dict[str, dict[str, Any] | None] = {}
        for use in credential_uses(model):
            if use.secret not in cache:
                cache[use.secret] = await self._kube.get(secrets, use.secret, self._namespace)
            secret = cache[use.secret]
            if secret is None:
                problems.append(
                    f"{use.path}: secret {use.secret!r} not found in namespace {self._namespace} "
                    f"(the {use.provider} credentials); create it: oc create secret generic {use.secret} "
                    f"-n {self._namespace} --from-file {use.key}=credentials-velero"
                )
                continue
            data = secret.get("data") or {}
            encoded = data.get(use.key)
            if not encoded:
                keys = ", ".join(sorted(data)) or "none"
                problems.append(
                    f"{use.path}: secret {use.secret!r} has no data for key {use.key!r} (its keys: {keys})"
                )
                continue
            try:
                content = base64.b64decode(encoded, validate=True)
            except ValueError:
                problems.append(f"{use.path}: secret {use.secret!r}, key {use.key!r} is not valid base64")
                continue
            # OADP rewrites CRLF to LF in the Secret; reading past it does the same without a write.
            content = content.replace(b"\r\n", b"\n")
            problems += [f"{use.path}: {problem}" for problem in check_credentials_content(use, content)]
        return problems

    async def _sibling_problems(self, name: str) -> list[str]:
        dpas = await self._resource("oadp.openshift.io", "dataprotectionapplications")
        others = [
            str((item.get("metadata") or {}).get("name"))
            for item in await self._kube.list_all(dpas, namespace=self._namespace)
            if (item.get("metadata") or {}).get("name") != name
        ]
        if others:
            return [
                f"metadata.name: only one DPA CR can exist per OADP installation namespace; "
                f"{self._namespace} also has {', '.join(sorted(others))}"
            ]
        return []

    # -- locations ------------------------------------------------------------

    def _owner(self, dpa: Mapping[str, Any]) -> dict[str, Any]:
        metadata = dpa.get("metadata") or {}
        return {
            "apiVersion": API_VERSION,
            "kind": "DataProtectionApplication",
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _desired(
        self, model: DataProtectionApplication
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        name = model.metadata.name or ""
        bsls: dict[str, dict[str, Any]] = {}
        for index, location in enumerate(model.spec.backup_locations or ()):
            velero = location.velero
            if velero is None:
                # validate_dpa lets a "bucket" entry through; _apply refuses it before any write.
                continue
            location_name = backup_location_name(name, index, location)
            spec = velero.model_dump(mode="json", by_alias=True, exclude_none=True)
            provider = provider_name(velero.provider)
            use = next(
                (u for u in credential_uses(model) if u.path == f"spec.backupLocations[{index}]"), None
            )
            if use is not None:
                spec["credential"] = {"name": use.secret, "key": use.key}
            labels = location_labels(location_name, "bsl")
            # OADP: no registry for Azure without a storage key (it cannot authenticate one).
            storage_key = (velero.config or {}).get("storageAccountKeyEnvVar")
            labels[_REGISTRY_LABEL] = "False" if provider == "azure" and not storage_key else "True"
            bsls[location_name] = {"labels": labels, "spec": spec}
        vsls: dict[str, dict[str, Any]] = {}
        for index, snapshot in enumerate(model.spec.snapshot_locations or ()):
            vsl = snapshot.velero
            if vsl is None:
                continue
            location_name = snapshot_location_name(name, index, snapshot)
            # Velero's VolumeSnapshotLocationSpec has no "default" nor "name": the guide's examples set
            # them there, and OADP's CRD prunes them.
            spec = vsl.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"default", "name"})
            use = next(
                (u for u in credential_uses(model) if u.path == f"spec.snapshotLocations[{index}]"), None
            )
            if use is not None:
                spec["credential"] = {"name": use.secret, "key": use.key}
            vsls[location_name] = {"labels": location_labels(location_name, "vsl"), "spec": spec}
        return bsls, vsls

    async def _apply(
        self, dpa: Mapping[str, Any], model: DataProtectionApplication
    ) -> tuple[int, dict[str, tuple[str, ...]]]:
        for index, location in enumerate(model.spec.backup_locations or ()):
            if location.bucket is not None:
                raise UsageError(
                    f"spec.backupLocations[{index}].bucket: CloudStorage buckets are not supported by strongroom; "
                    "describe the bucket with a velero block instead"
                )
        bsl_res = await self._resource("velero.io", "backupstoragelocations")
        vsl_res = await self._resource("velero.io", "volumesnapshotlocations")
        secrets = await self._resource("", "secrets")
        bsls, vsls = self._desired(model)
        owner = self._owner(dpa)
        writes = 0
        # Checked first, so that a location owned by someone else stops the reconcile before any write.
        existing_bsls = {name: await self._kube.get(bsl_res, name, self._namespace) for name in bsls}
        existing_vsls = {name: await self._kube.get(vsl_res, name, self._namespace) for name in vsls}
        for kind, existing in (
            ("BackupStorageLocation", existing_bsls),
            ("VolumeSnapshotLocation", existing_vsls),
        ):
            for name, body in existing.items():
                other = _other_controller(body, owner["uid"])
                if other is not None:
                    raise UsageError(
                        f"{kind} {name!r} already exists and is controlled by {other}; "
                        "rename the location in the DPA or delete that object"
                    )
        for use in credential_uses(model):
            writes += await self._label_secret(secrets, use.secret, str(owner["name"]))
        for res, kind, desired, existing in (
            (bsl_res, "BackupStorageLocation", bsls, existing_bsls),
            (vsl_res, "VolumeSnapshotLocation", vsls, existing_vsls),
        ):
            for name, wanted in desired.items():
                writes += await self._ensure(res, kind, name, wanted, existing[name], owner)
        writes += await self._prune(bsl_res, "bsl", set(bsls), str(owner["uid"]))
        writes += await self._prune(vsl_res, "vsl", set(vsls), str(owner["uid"]))
        return writes, {"bsl": tuple(bsls), "vsl": tuple(vsls)}

    async def _ensure(
        self,
        res: ApiResource,
        kind: str,
        name: str,
        wanted: Mapping[str, Any],
        current: dict[str, Any] | None,
        owner: dict[str, Any],
    ) -> int:
        if current is None:
            body = {
                "apiVersion": VELERO_API_VERSION,
                "kind": kind,
                "metadata": {
                    "name": name,
                    "namespace": self._namespace,
                    "labels": dict(wanted["labels"]),
                    "ownerReferences": [owner],
                },
                "spec": wanted["spec"],
            }
            await self._kube.create(res, body, self._namespace)
            _log.info("created %s %s/%s", kind, self._namespace, name)
            return 1
        metadata = current.setdefault("metadata", {})
        labels = metadata.get("labels") or {}
        references = metadata.get("ownerReferences") or []
        owned = any(ref.get("uid") == owner["uid"] and ref.get("controller") for ref in references)
        if (
            current.get("spec") == wanted["spec"]
            and all(labels.get(key) == value for key, value in wanted["labels"].items())
            and owned
        ):
            return 0
        metadata["labels"] = {**labels, **wanted["labels"]}
        if not owned:
            metadata["ownerReferences"] = [
                *(ref for ref in references if ref.get("uid") != owner["uid"]),
                owner,
            ]
        current["spec"] = wanted["spec"]
        await self._kube.replace(res, current, self._namespace)
        _log.info("updated %s %s/%s", kind, self._namespace, name)
        return 1

    async def _prune(self, res: ApiResource, component: str, keep: set[str], owner_uid: str) -> int:
        selector = ",".join(
            f"{key}={value}"
            for key, value in {**_MANAGED_BY, "app.kubernetes.io/component": component}.items()
        )
        deleted = 0
        for item in await self._kube.list_all(res, namespace=self._namespace, label_selector=selector):
            metadata = item.get("metadata") or {}
            name = metadata.get("name")
            # Only what this DPA controls: another DPA's (or a hand-made) location is not ours to remove.
            ours = any(
                ref.get("uid") == owner_uid and ref.get("controller")
                for ref in metadata.get("ownerReferences") or ()
            )
            if not ours or name in keep or not isinstance(name, str):
                continue
            try:
                await self._kube.delete(res, name, self._namespace)
            except KubeNotFound:
                continue
            _log.info(
                "deleted %s %s/%s: no longer in the DataProtectionApplication",
                res.kind,
                self._namespace,
                name,
            )
            deleted += 1
        return deleted

    async def _label_secret(self, secrets: ApiResource, name: str, dpa_name: str) -> int:
        # OADP labels the credentials Secrets it uses, so that a change to one reconciles the DPA again.
        secret = await self._kube.get(secrets, name, self._namespace)
        if secret is None:
            return 0
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(OADP_LABEL) == "True" and labels.get(_DPA_NAME_LABEL) == dpa_name:
            return 0
        patch = {"metadata": {"labels": {OADP_LABEL: "True", _DPA_NAME_LABEL: dpa_name}}}
        await self._kube.patch(secrets, name, patch, self._namespace)
        return 1

    # -- status ---------------------------------------------------------------

    async def _write_condition(self, dpa: Mapping[str, Any], errors: list[str]) -> int:
        metadata = dpa.get("metadata") or {}
        status = dpa.get("status") or {}
        conditions = [dict(item) for item in status.get("conditions") or () if isinstance(item, dict)]
        previous = _find_condition(conditions, CONDITION_RECONCILED)
        state = "False" if errors else "True"
        wanted: dict[str, Any] = {
            "type": CONDITION_RECONCILED,
            "status": state,
            "reason": REASON_ERROR if errors else REASON_COMPLETE,
            "message": "; ".join(errors) if errors else RECONCILE_COMPLETE_MESSAGE,
        }
        generation = metadata.get("generation")
        if isinstance(generation, int):
            wanted["observedGeneration"] = generation
        if previous is not None and previous.get("status") == state and previous.get("lastTransitionTime"):
            wanted["lastTransitionTime"] = previous["lastTransitionTime"]
        else:
            wanted["lastTransitionTime"] = format_timestamp(self._clock())
        if previous is not None and all(previous.get(key) == value for key, value in wanted.items()):
            return 0
        if previous is None:
            conditions.append(wanted)
        else:
            conditions[conditions.index(previous)] = wanted
        dpas = await self._resource("oadp.openshift.io", "dataprotectionapplications")
        name = str(metadata.get("name"))
        body = {"status": {"conditions": conditions}}
        subresource = "status" if "status" in dpas.subresources else None
        try:
            await self._kube.patch(dpas, name, body, self._namespace, subresource=subresource)
        except KubeNotFound:
            return 0  # deleted meanwhile: nothing left to report on
        return 1


def _other_controller(body: Mapping[str, Any] | None, uid: object) -> str | None:
    if body is None:
        return None
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid") != uid:
            return f"{ref.get('kind')} {ref.get('name')!r}"
    return None
