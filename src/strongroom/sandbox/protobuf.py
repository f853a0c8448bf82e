"""Decoding the Kubernetes protobuf request bodies that kubectl's typed clients send.

kubectl sends `application/vnd.kubernetes.protobuf` for everything it builds
with a typed client: `kubectl create namespace|configmap|secret|deployment|...`,
`kubectl auth can-i`, `kubectl certificate approve`. kube-apiserver accepts
them, so the sandbox must too. The body is the `k8s\\0` magic, then a
`runtime.Unknown` envelope (type meta, raw object bytes).

The field tables below cover the messages those commands send, and whole pod
templates: `kubectl create job NAME --from=cronjob/X` posts the CronJob's job
template as it is, with every PodSpec field the CronJob uses. Their field
numbers are part of the Kubernetes wire API; the core/v1 and batch/v1 tables
were generated from k8s.io/api at kubernetes-1.32.4 (the kubectl on this
machine is 1.32): numbers and Go types from the protobuf and json tags in
types.go, checked against generated.proto. The integration tests compare every
decoded object with kubectl's own `--dry-run=client -o json`. A field this
module does not know is refused with 415, never dropped: losing part of an
object silently is worse than asking the client for JSON.

Decoding follows Go's JSON encoding of the same structs: the generated
marshallers write every non-pointer field, so zero values are omitted unless
the field is a pointer (it was set) or its JSON tag has no `omitempty`, or it
is a struct in the generated tables (encoding/json never omits a struct:
`resources: {}`). Where Go would write `null` (a nil pointer or slice without
`omitempty`, a zero time) the key is left out.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """The body cannot be decoded faithfully."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a scalar, "map:<value type>", or a message name
    repeated: bool = False
    # "opt": a pointer in Go (present on the wire means set, so zero is kept);
    # "keep": no omitempty in its JSON tag (zero is emitted too).
    presence: str = ""


def f(name: str, type_: str = "string", *, repeated: bool = False, presence: str = "") -> Field:
    return Field(name, type_, repeated, presence)


def opt(name: str, type_: str) -> Field:
    return Field(name, type_, False, "opt")


def keep(name: str, type_: str = "string") -> Field:
    return Field(name, type_, False, "keep")


def rep(name: str, type_: str = "string") -> Field:
    return Field(name, type_, True)


_OBJECT_META = {
    1: f("name"),
    2: f("generateName"),
    3: f("namespace"),
    4: f("selfLink"),
    5: f("uid"),
    6: f("resourceVersion"),
    7: f("generation", "int64"),
    8: f("creationTimestamp", "Time"),
    9: opt("deletionTimestamp", "Time"),
    10: opt("deletionGracePeriodSeconds", "int64"),
    11: f("labels", "map:string"),
    12: f("annotations", "map:string"),
    13: rep("ownerReferences", "OwnerReference"),
    14: rep("finalizers"),
}


def _typed(spec: str | None = None, status: str | None = None, **extra: Field) -> dict[int, Field]:
    """The usual shape of a kind: metadata = 1, spec = 2, status = 3.

    Go writes an empty spec or status as `{}`; here an empty one is left out, for the server's
    create resets the status and its defaulting fills what the object leaves unset.
    """
    fields: dict[int, Field] = {1: f("metadata", "ObjectMeta")}
    if spec:
        fields[2] = f("spec", spec)
    if status:
        fields[3] = f("status", status)
    return fields


# core/v1 Container (kubernetes-1.32 generated.proto), shared with EphemeralContainerCommon.
_CONTAINER: dict[int, Field] = {
    1: keep("name"),
    2: f("image"),
    3: rep("command"),
    4: rep("args"),
    5: f("workingDir"),
    6: rep("ports", "ContainerPort"),
    7: rep("env", "EnvVar"),
    8: keep("resources", "ResourceRequirements"),
    9: rep("volumeMounts", "VolumeMount"),
    10: opt("livenessProbe", "Probe"),
    11: opt("readinessProbe", "Probe"),
    12: opt("lifecycle", "Lifecycle"),
    13: f("terminationMessagePath"),
    14: f("imagePullPolicy"),
    15: opt("securityContext", "SecurityContext"),
    16: f("stdin", "bool"),
    17: f("stdinOnce", "bool"),
    18: f("tty", "bool"),
    19: rep("envFrom", "EnvFromSource"),
    20: f("terminationMessagePolicy"),
    21: rep("volumeDevices", "VolumeDevice"),
    22: opt("startupProbe", "Probe"),
    23: rep("resizePolicy", "ContainerResizePolicy"),
    24: opt("restartPolicy", "string"),
}

MESSAGES: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: f("apiVersion"), 2: f("kind")},
    "ObjectMeta": _OBJECT_META,
    "OwnerReference": {
        1: keep("kind"),
        3: keep("name"),
        4: keep("uid"),
        5: keep("apiVersion"),
        6: opt("controller", "bool"),
        7: opt("blockOwnerDeletion", "bool"),
    },
    "LabelSelector": {
        1: f("matchLabels", "map:string"),
        2: rep("matchExpressions", "LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: keep("key"), 2: keep("operator"), 3: rep("values")},
    "ObjectReference": {
        1: f("kind"),
        2: f("namespace"),
        3: f("name"),
        4: f("uid"),
        5: f("apiVersion"),
        6: f("resourceVersion"),
        7: f("fieldPath"),
    },
    # core/v1
    "Namespace": _typed("NamespaceSpec", "NamespaceStatus"),
    "NamespaceSpec": {1: rep("finalizers")},
    "NamespaceStatus": {1: f("phase")},
    "ConfigMap": {
        1: f("metadata", "ObjectMeta"),
        2: f("data", "map:string"),
        3: f("binaryData", "map:bytes"),
        4: opt("immutable", "bool"),
    },
    "Secret": {
        1: f("metadata", "ObjectMeta"),
        2: f("data", "map:bytes"),
        3: f("type"),
        4: f("stringData", "map:string"),
        5: opt("immutable", "bool"),
    },
    "ServiceAccount": {
        1: f("metadata", "ObjectMeta"),
        2: rep("secrets", "ObjectReference"),
        3: rep("imagePullSecrets", "LocalObjectReference"),
        4: opt("automountServiceAccountToken", "bool"),
    },
    "Service": _typed("ServiceSpec", "ServiceStatus"),
    "ServiceSpec": {
        1: rep("ports", "ServicePort"),
        2: f("selector", "map:string"),
        3: f("clusterIP"),
        4: f("type"),
        5: rep("externalIPs"),
        7: f("sessionAffinity"),
        8: f("loadBalancerIP"),
        9: rep("loadBalancerSourceRanges"),
        10: f("externalName"),
        11: f("externalTrafficPolicy"),
        12: f("healthCheckNodePort", "int32"),
        13: f("publishNotReadyAddresses", "bool"),
        18: rep("clusterIPs"),
    },
    "ServicePort": {
        1: f("name"),
        2: f("protocol"),
        3: keep("port", "int32"),
        4: f("targetPort", "IntOrString"),
        5: f("nodePort", "int32"),
        6: opt("appProtocol", "string"),
    },
    "ServiceStatus": {1: f("loadBalancer", "LoadBalancerStatus")},
    "LoadBalancerStatus": {},
    "ResourceQuota": _typed("ResourceQuotaSpec", "ResourceQuotaStatus"),
    "ResourceQuotaSpec": {1: f("hard", "map:Quantity"), 2: rep("scopes")},
    "ResourceQuotaStatus": {1: f("hard", "map:Quantity"), 2: f("used", "map:Quantity")},
    # core/v1 pod templates, generated from k8s.io/api at kubernetes-1.32.4: field numbers from the
    # protobuf tags in core/v1/types.go, checked against core/v1/generated.proto; `opt` where the Go
    # field is a pointer, `keep` where its JSON tag has no omitempty or it is a struct (encoding/json
    # never omits a struct, so kubectl's own JSON carries `resources: {}`), `inline` for embedded ones.
    "PodTemplateSpec": {1: keep("metadata", "ObjectMeta"), 2: keep("spec", "PodSpec")},
    "PodSpec": {
        1: rep("volumes", "Volume"),
        2: Field("containers", "Container", True, "keep"),
        3: f("restartPolicy"),
        4: opt("terminationGracePeriodSeconds", "int64"),
        5: opt("activeDeadlineSeconds", "int64"),
        6: f("dnsPolicy"),
        7: f("nodeSelector", "map:string"),
        8: f("serviceAccountName"),
        9: f("serviceAccount"),
        10: f("nodeName"),
        11: f("hostNetwork", "bool"),
        12: f("hostPID", "bool"),
        13: f("hostIPC", "bool"),
        14: opt("securityContext", "PodSecurityContext"),
        15: rep("imagePullSecrets", "LocalObjectReference"),
        16: f("hostname"),
        17: f("subdomain"),
        18: opt("affinity", "Affinity"),
        19: f("schedulerName"),
        20: rep("initContainers", "Container"),
        21: opt("automountServiceAccountToken", "bool"),
        22: rep("tolerations", "Toleration"),
        23: rep("hostAliases", "HostAlias"),
        24: f("priorityClassName"),
        25: opt("priority", "int32"),
        26: opt("dnsConfig", "PodDNSConfig"),
        27: opt("shareProcessNamespace", "bool"),
        28: rep("readinessGates", "PodReadinessGate"),
        29: opt("runtimeClassName", "string"),
        30: opt("enableServiceLinks", "bool"),
        31: opt("preemptionPolicy", "string"),
        32: f("overhead", "map:Quantity"),
        33: rep("topologySpreadConstraints", "TopologySpreadConstraint"),
        34: rep("ephemeralContainers", "EphemeralContainer"),
        35: opt("setHostnameAsFQDN", "bool"),
        36: opt("os", "PodOS"),
        37: opt("hostUsers", "bool"),
        38: rep("schedulingGates", "PodSchedulingGate"),
        39: rep("resourceClaims", "PodResourceClaim"),
        40: opt("resources", "ResourceRequirements"),
    },
    "Volume": {1: keep("name"), 2: Field("", "VolumeSource", False, "inline")},
    "Container": _CONTAINER,
    "PodSecurityContext": {
        1: opt("seLinuxOptions", "SELinuxOptions"),
        2: opt("runAsUser", "int64"),
        3: opt("runAsNonRoot", "bool"),
        4: rep("supplementalGroups", "int64"),
        5: opt("fsGroup", "int64"),
        6: opt("runAsGroup", "int64"),
        7: rep("sysctls", "Sysctl"),
        8: opt("windowsOptions", "WindowsSecurityContextOptions"),
        9: opt("fsGroupChangePolicy", "string"),
        10: opt("seccompProfile", "SeccompProfile"),
        11: opt("appArmorProfile", "AppArmorProfile"),
        12: opt("supplementalGroupsPolicy", "string"),
        13: opt("seLinuxChangePolicy", "string"),
    },
    "LocalObjectReference": {1: f("name")},
    "Affinity": {
        1: opt("nodeAffinity", "NodeAffinity"),
        2: opt("podAffinity", "PodAffinity"),
        3: opt("podAntiAffinity", "PodAntiAffinity"),
    },
    "Toleration": {
        1: f("key"),
        2: f("operator"),
        3: f("value"),
        4: f("effect"),
        5: opt("tolerationSeconds", "int64"),
    },
    "HostAlias": {1: keep("ip"), 2: rep("hostnames")},
    "PodDNSConfig": {1: rep("nameservers"), 2: rep("searches"), 3: rep("options", "PodDNSConfigOption")},
    "PodReadinessGate": {1: keep("conditionType")},
    "TopologySpreadConstraint": {
        1: keep("maxSkew", "int32"),
        2: keep("topologyKey"),
        3: keep("whenUnsatisfiable"),
        4: opt("labelSelector", "LabelSelector"),
        5: opt("minDomains", "int32"),
        6: opt("nodeAffinityPolicy", "string"),
        7: opt("nodeTaintsPolicy", "string"),
        8: rep("matchLabelKeys"),
    },
    "EphemeralContainer": {
        1: Field("", "EphemeralContainerCommon", False, "inline"),
        2: f("targetContainerName"),
    },
    "PodOS": {1: keep("name")},
    "PodSchedulingGate": {1: keep("name")},
    "PodResourceClaim": {
        1: keep("name"),
        3: opt("resourceClaimName", "string"),
        4: opt("resourceClaimTemplateName", "string"),
    },
    "ResourceRequirements": {
        1: f("limits", "map:Quantity"),
        2: f("requests", "map:Quantity"),
        3: rep("claims", "ResourceClaim"),
    },
    "VolumeSource": {
        1: opt("hostPath", "HostPathVolumeSource"),
        2: opt("emptyDir", "EmptyDirVolumeSource"),
        3: opt("gcePersistentDisk", "GCEPersistentDiskVolumeSource"),
        4: opt("awsElasticBlockStore", "AWSElasticBlockStoreVolumeSource"),
        5: opt("gitRepo", "GitRepoVolumeSource"),
        6: opt("secret", "SecretVolumeSource"),
        7: opt("nfs", "NFSVolumeSource"),
        8: opt("iscsi", "ISCSIVolumeSource"),
        9: opt("glusterfs", "GlusterfsVolumeSource"),
        10: opt("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        11: opt("rbd", "RBDVolumeSource"),
        12: opt("flexVolume", "FlexVolumeSource"),
        13: opt("cinder", "CinderVolumeSource"),
        14: opt("cephfs", "CephFSVolumeSource"),
        15: opt("flocker", "FlockerVolumeSource"),
        16: opt("downwardAPI", "DownwardAPIVolumeSource"),
        17: opt("fc", "FCVolumeSource"),
        18: opt("azureFile", "AzureFileVolumeSource"),
        19: opt("configMap", "ConfigMapVolumeSource"),
        20: opt("vsphereVolume", "VsphereVirtualDiskVolumeSource"),
        21: opt("quobyte", "QuobyteVolumeSource"),
        22: opt("azureDisk", "AzureDiskVolumeSource"),
        23: opt("photonPersistentDisk", "PhotonPersistentDiskVolumeSource"),
        24: opt("portworxVolume", "PortworxVolumeSource"),
        25: opt("scaleIO", "ScaleIOVolumeSource"),
        26: opt("projected", "ProjectedVolumeSource"),
        27: opt("storageos", "StorageOSVolumeSource"),
        28: opt("csi", "CSIVolumeSource"),
        29: opt("ephemeral", "EphemeralVolumeSource"),
        30: opt("image", "ImageVolumeSource"),
    },
    "ContainerPort": {
        1: f("name"),
        2: f("hostPort", "int32"),
        3: keep("containerPort", "int32"),
        4: f("protocol"),
        5: f("hostIP"),
    },
    "EnvVar": {1: keep("name"), 2: f("value"), 3: opt("valueFrom", "EnvVarSource")},
    "VolumeMount": {
        1: keep("name"),
        2: f("readOnly", "bool"),
        3: keep("mountPath"),
        4: f("subPath"),
        5: opt("mountPropagation", "string"),
        6: f("subPathExpr"),
        7: opt("recursiveReadOnly", "string"),
    },
    "Probe": {
        1: Field("", "ProbeHandler", False, "inline"),
        2: f("initialDelaySeconds", "int32"),
        3: f("timeoutSeconds", "int32"),
        4: f("periodSeconds", "int32"),
        5: f("successThreshold", "int32"),
        6: f("failureThreshold", "int32"),
        7: opt("terminationGracePeriodSeconds", "int64"),
    },
    "Lifecycle": {1: opt("postStart", "LifecycleHandler"), 2: opt("preStop", "LifecycleHandler")},
    "SecurityContext": {
        1: opt("capabilities", "Capabilities"),
        2: opt("privileged", "bool"),
        3: opt("seLinuxOptions", "SELinuxOptions"),
        4: opt("runAsUser", "int64"),
        5: opt("runAsNonRoot", "bool"),
        6: opt("readOnlyRootFilesystem", "bool"),
        7: opt("allowPrivilegeEscalation", "bool"),
        8: opt("runAsGroup", "int64"),
        9: opt("procMount", "string"),
        10: opt("windowsOptions", "WindowsSecurityContextOptions"),
        11: opt("seccompProfile", "SeccompProfile"),
        12: opt("appArmorProfile", "AppArmorProfile"),
    },
    "EnvFromSource": {
        1: f("prefix"),
        2: opt("configMapRef", "ConfigMapEnvSource"),
        3: opt("secretRef", "SecretEnvSource"),
    },
    "VolumeDevice": {1: keep("name"), 2: keep("devicePath")},
    "ContainerResizePolicy": {1: keep("resourceName"), 2: keep("restartPolicy")},
    "SELinuxOptions": {1: f("user"), 2: f("role"), 3: f("type"), 4: f("level")},
    "Sysctl": {1: keep("name"), 2: keep("value")},
    "WindowsSecurityContextOptions": {
        1: opt("gmsaCredentialSpecName", "string"),
        2: opt("gmsaCredentialSpec", "string"),
        3: opt("runAsUserName", "string"),
        4: opt("hostProcess", "bool"),
    },
    "SeccompProfile": {1: keep("type"), 2: opt("localhostProfile", "string")},
    "AppArmorProfile": {1: keep("type"), 2: opt("localhostProfile", "string")},
    "NodeAffinity": {
        1: opt("requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        2: rep("preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm"),
    },
    "PodAffinity": {
        1: rep("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        2: rep("preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm"),
    },
    "PodAntiAffinity": {
        1: rep("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        2: rep("preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm"),
    },
    "PodDNSConfigOption": {1: f("name"), 2: opt("value", "string")},
    # Field for field the same wire layout as Container (upstream repeats it as its own message).
    "EphemeralContainerCommon": _CONTAINER,
    "ResourceClaim": {1: keep("name"), 2: f("request")},
    "HostPathVolumeSource": {1: keep("path"), 2: opt("type", "string")},
    "EmptyDirVolumeSource": {1: f("medium"), 2: opt("sizeLimit", "Quantity")},
    "GCEPersistentDiskVolumeSource": {
        1: keep("pdName"),
        2: f("fsType"),
        3: f("partition", "int32"),
        4: f("readOnly", "bool"),
    },
    "AWSElasticBlockStoreVolumeSource": {
        1: keep("volumeID"),
        2: f("fsType"),
        3: f("partition", "int32"),
        4: f("readOnly", "bool"),
    },
    "GitRepoVolumeSource": {1: keep("repository"), 2: f("revision"), 3: f("directory")},
    "SecretVolumeSource": {
        1: f("secretName"),
        2: rep("items", "KeyToPath"),
        3: opt("defaultMode", "int32"),
        4: opt("optional", "bool"),
    },
    "NFSVolumeSource": {1: keep("server"), 2: keep("path"), 3: f("readOnly", "bool")},
    "ISCSIVolumeSource": {
        1: keep("targetPortal"),
        2: keep("iqn"),
        3: keep("lun", "int32"),
        4: f("iscsiInterface"),
        5: f("fsType"),
        6: f("readOnly", "bool"),
        7: rep("portals"),
        8: f("chapAuthDiscovery", "bool"),
        10: opt("secretRef", "LocalObjectReference"),
        11: f("chapAuthSession", "bool"),
        12: opt("initiatorName", "string"),
    },
    "GlusterfsVolumeSource": {1: keep("endpoints"), 2: keep("path"), 3: f("readOnly", "bool")},
    "PersistentVolumeClaimVolumeSource": {1: keep("claimName"), 2: f("readOnly", "bool")},
    "RBDVolumeSource": {
        1: Field("monitors", "string", True, "keep"),
        2: keep("image"),
        3: f("fsType"),
        4: f("pool"),
        5: f("user"),
        6: f("keyring"),
        7: opt("secretRef", "LocalObjectReference"),
        8: f("readOnly", "bool"),
    },
    "FlexVolumeSource": {
        1: keep("driver"),
        2: f("fsType"),
        3: opt("secretRef", "LocalObjectReference"),
        4: f("readOnly", "bool"),
        5: f("options", "map:string"),
    },
    "CinderVolumeSource": {
        1: keep("volumeID"),
        2: f("fsType"),
        3: f("readOnly", "bool"),
        4: opt("secretRef", "LocalObjectReference"),
    },
    "CephFSVolumeSource": {
        1: Field("monitors", "string", True, "keep"),
        2: f("path"),
        3: f("user"),
        4: f("secretFile"),
        5: opt("secretRef", "LocalObjectReference"),
        6: f("readOnly", "bool"),
    },
    "FlockerVolumeSource": {1: f("datasetName"), 2: f("datasetUUID")},
    "DownwardAPIVolumeSource": {1: rep("items", "DownwardAPIVolumeFile"), 2: opt("defaultMode", "int32")},
    "FCVolumeSource": {
        1: rep("targetWWNs"),
        2: opt("lun", "int32"),
        3: f("fsType"),
        4: f("readOnly", "bool"),
        5: rep("wwids"),
    },
    "AzureFileVolumeSource": {1: keep("secretName"), 2: keep("shareName"), 3: f("readOnly", "bool")},
    "ConfigMapVolumeSource": {
        1: Field("", "LocalObjectReference", False, "inline"),
        2: rep("items", "KeyToPath"),
        3: opt("defaultMode", "int32"),
        4: opt("optional", "bool"),
    },
    "VsphereVirtualDiskVolumeSource": {
        1: keep("volumePath"),
        2: f("fsType"),
        3: f("storagePolicyName"),
        4: f("storagePolicyID"),
    },
    "QuobyteVolumeSource": {
        1: keep("registry"),
        2: keep("volume"),
        3: f("readOnly", "bool"),
        4: f("user"),
        5: f("group"),
        6: f("tenant"),
    },
    "AzureDiskVolumeSource": {
        1: keep("diskName"),
        2: keep("diskURI"),
        3: opt("cachingMode", "string"),
        4: opt("fsType", "string"),
        5: opt("readOnly", "bool"),
        6: opt("kind", "string"),
    },
    "PhotonPersistentDiskVolumeSource": {1: keep("pdID"), 2: f("fsType")},
    "PortworxVolumeSource": {1: keep("volumeID"), 2: f("fsType"), 3: f("readOnly", "bool")},
    "ScaleIOVolumeSource": {
        1: keep("gateway"),
        2: keep("system"),
        3: opt("secretRef", "LocalObjectReference"),
        4: f("sslEnabled", "bool"),
        5: f("protectionDomain"),
        6: f("storagePool"),
        7: f("storageMode"),
        8: f("volumeName"),
        9: f("fsType"),
        10: f("readOnly", "bool"),
    },
    "ProjectedVolumeSource": {
        1: Field("sources", "VolumeProjection", True, "keep"),
        2: opt("defaultMode", "int32"),
    },
    "StorageOSVolumeSource": {
        1: f("volumeName"),
        2: f("volumeNamespace"),
        3: f("fsType"),
        4: f("readOnly", "bool"),
        5: opt("secretRef", "LocalObjectReference"),
    },
    "CSIVolumeSource": {
        1: keep("driver"),
        2: opt("readOnly", "bool"),
        3: opt("fsType", "string"),
        4: f("volumeAttributes", "map:string"),
        5: opt("nodePublishSecretRef", "LocalObjectReference"),
    },
    "EphemeralVolumeSource": {1: opt("volumeClaimTemplate", "PersistentVolumeClaimTemplate")},
    "ImageVolumeSource": {1: f("reference"), 2: f("pullPolicy")},
    "EnvVarSource": {
        1: opt("fieldRef", "ObjectFieldSelector"),
        2: opt("resourceFieldRef", "ResourceFieldSelector"),
        3: opt("configMapKeyRef", "ConfigMapKeySelector"),
        4: opt("secretKeyRef", "SecretKeySelector"),
    },
    "ProbeHandler": {
        1: opt("exec", "ExecAction"),
        2: opt("httpGet", "HTTPGetAction"),
        3: opt("tcpSocket", "TCPSocketAction"),
        4: opt("grpc", "GRPCAction"),
    },
    "LifecycleHandler": {
        1: opt("exec", "ExecAction"),
        2: opt("httpGet", "HTTPGetAction"),
        3: opt("tcpSocket", "TCPSocketAction"),
        4: opt("sleep", "SleepAction"),
    },
    "Capabilities": {1: rep("add"), 2: rep("drop")},
    "ConfigMapEnvSource": {1: Field("", "LocalObjectReference", False, "inline"), 2: opt("optional", "bool")},
    "SecretEnvSource": {1: Field("", "LocalObjectReference", False, "inline"), 2: opt("optional", "bool")},
    "NodeSelector": {1: Field("nodeSelectorTerms", "NodeSelectorTerm", True, "keep")},
    "PreferredSchedulingTerm": {1: keep("weight", "int32"), 2: keep("preference", "NodeSelectorTerm")},
    "PodAffinityTerm": {
        1: opt("labelSelector", "LabelSelector"),
        2: rep("namespaces"),
        3: keep("topologyKey"),
        4: opt("namespaceSelector", "LabelSelector"),
        5: rep("matchLabelKeys"),
        6: rep("mismatchLabelKeys"),
    },
    "WeightedPodAffinityTerm": {1: keep("weight", "int32"), 2: keep("podAffinityTerm", "PodAffinityTerm")},
    "KeyToPath": {1: keep("key"), 2: keep("path"), 3: opt("mode", "int32")},
    "DownwardAPIVolumeFile": {
        1: keep("path"),
        2: opt("fieldRef", "ObjectFieldSelector"),
        3: opt("resourceFieldRef", "ResourceFieldSelector"),
        4: opt("mode", "int32"),
    },
    "VolumeProjection": {
        1: opt("secret", "SecretProjection"),
        2: opt("downwardAPI", "DownwardAPIProjection"),
        3: opt("configMap", "ConfigMapProjection"),
        4: opt("serviceAccountToken", "ServiceAccountTokenProjection"),
        5: opt("clusterTrustBundle", "ClusterTrustBundleProjection"),
    },
    "PersistentVolumeClaimTemplate": {
        1: keep("metadata", "ObjectMeta"),
        2: keep("spec", "PersistentVolumeClaimSpec"),
    },
    "ObjectFieldSelector": {1: f("apiVersion"), 2: keep("fieldPath")},
    "ResourceFieldSelector": {1: f("containerName"), 2: keep("resource"), 3: keep("divisor", "Quantity")},
    "ConfigMapKeySelector": {
        1: Field("", "LocalObjectReference", False, "inline"),
        2: keep("key"),
        3: opt("optional", "bool"),
    },
    "SecretKeySelector": {
        1: Field("", "LocalObjectReference", False, "inline"),
        2: keep("key"),
        3: opt("optional", "bool"),
    },
    "ExecAction": {1: rep("command")},
    "HTTPGetAction": {
        1: f("path"),
        2: keep("port", "IntOrString"),
        3: f("host"),
        4: f("scheme"),
        5: rep("httpHeaders", "HTTPHeader"),
    },
    "TCPSocketAction": {1: keep("port", "IntOrString"), 2: f("host")},
    "GRPCAction": {1: keep("port", "int32"), 2: opt("service", "string")},
    "SleepAction": {1: keep("seconds", "int64")},
    "NodeSelectorTerm": {
        1: rep("matchExpressions", "NodeSelectorRequirement"),
        2: rep("matchFields", "NodeSelectorRequirement"),
    },
    "SecretProjection": {
        1: Field("", "LocalObjectReference", False, "inline"),
        2: rep("items", "KeyToPath"),
        4: opt("optional", "bool"),
    },
    "DownwardAPIProjection": {1: rep("items", "DownwardAPIVolumeFile")},
    "ConfigMapProjection": {
        1: Field("", "LocalObjectReference", False, "inline"),
        2: rep("items", "KeyToPath"),
        4: opt("optional", "bool"),
    },
    "ServiceAccountTokenProjection": {
        1: f("audience"),
        2: opt("expirationSeconds", "int64"),
        3: keep("path"),
    },
    "ClusterTrustBundleProjection": {
        1: opt("name", "string"),
        2: opt("signerName", "string"),
        3: opt("labelSelector", "LabelSelector"),
        4: keep("path"),
        5: opt("optional", "bool"),
    },
    "PersistentVolumeClaimSpec": {
        1: rep("accessModes"),
        2: keep("resources", "VolumeResourceRequirements"),
        3: f("volumeName"),
        4: opt("selector", "LabelSelector"),
        5: opt("storageClassName", "string"),
        6: opt("volumeMode", "string"),
        7: opt("dataSource", "TypedLocalObjectReference"),
        8: opt("dataSourceRef", "TypedObjectReference"),
        9: opt("volumeAttributesClassName", "string"),
    },
    "HTTPHeader": {1: keep("name"), 2: keep("value")},
    "NodeSelectorRequirement": {1: keep("key"), 2: keep("operator"), 3: rep("values")},
    "VolumeResourceRequirements": {1: f("limits", "map:Quantity"), 2: f("requests", "map:Quantity")},
    "TypedLocalObjectReference": {1: opt("apiGroup", "string"), 2: keep("kind"), 3: keep("name")},
    "TypedObjectReference": {
        1: opt("apiGroup", "string"),
        2: keep("kind"),
        3: keep("name"),
        4: opt("namespace", "string"),
    },
    # apps/v1
    "Deployment": _typed("DeploymentSpec", "DeploymentStatus"),
    "DeploymentSpec": {
        1: opt("replicas", "int32"),
        2: opt("selector", "LabelSelector"),
        3: f("template", "PodTemplateSpec"),
        4: f("strategy", "DeploymentStrategy"),
        5: f("minReadySeconds", "int32"),
        6: opt("revisionHistoryLimit", "int32"),
        7: f("paused", "bool"),
        9: opt("progressDeadlineSeconds", "int32"),
    },
    "DeploymentStrategy": {1: f("type"), 2: opt("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: opt("maxUnavailable", "IntOrString"), 2: opt("maxSurge", "IntOrString")},
    "DeploymentStatus": {
        1: f("observedGeneration", "int64"),
        2: f("replicas", "int32"),
        3: f("updatedReplicas", "int32"),
        4: f("availableReplicas", "int32"),
        5: f("unavailableReplicas", "int32"),
        7: f("readyReplicas", "int32"),
        8: opt("collisionCount", "int32"),
    },
    # batch/v1, generated from k8s.io/api at kubernetes-1.32.4 like the pod templates above.
    "Job": _typed("JobSpec", "JobStatus"),
    "CronJob": _typed("CronJobSpec", "CronJobStatus"),
    "JobSpec": {
        1: opt("parallelism", "int32"),
        2: opt("completions", "int32"),
        3: opt("activeDeadlineSeconds", "int64"),
        4: opt("selector", "LabelSelector"),
        5: opt("manualSelector", "bool"),
        6: keep("template", "PodTemplateSpec"),
        7: opt("backoffLimit", "int32"),
        8: opt("ttlSecondsAfterFinished", "int32"),
        9: opt("completionMode", "string"),
        10: opt("suspend", "bool"),
        11: opt("podFailurePolicy", "PodFailurePolicy"),
        12: opt("backoffLimitPerIndex", "int32"),
        13: opt("maxFailedIndexes", "int32"),
        14: opt("podReplacementPolicy", "string"),
        15: opt("managedBy", "string"),
        16: opt("successPolicy", "SuccessPolicy"),
    },
    "JobStatus": {
        1: rep("conditions", "JobCondition"),
        2: opt("startTime", "Time"),
        3: opt("completionTime", "Time"),
        4: f("active", "int32"),
        5: f("succeeded", "int32"),
        6: f("failed", "int32"),
        7: f("completedIndexes"),
        8: opt("uncountedTerminatedPods", "UncountedTerminatedPods"),
        9: opt("ready", "int32"),
        10: opt("failedIndexes", "string"),
        11: opt("terminating", "int32"),
    },
    "CronJobSpec": {
        1: keep("schedule"),
        2: opt("startingDeadlineSeconds", "int64"),
        3: f("concurrencyPolicy"),
        4: opt("suspend", "bool"),
        5: keep("jobTemplate", "JobTemplateSpec"),
        6: opt("successfulJobsHistoryLimit", "int32"),
        7: opt("failedJobsHistoryLimit", "int32"),
        8: opt("timeZone", "string"),
    },
    "CronJobStatus": {
        1: rep("active", "ObjectReference"),
        4: opt("lastScheduleTime", "Time"),
        5: opt("lastSuccessfulTime", "Time"),
    },
    "PodFailurePolicy": {1: Field("rules", "PodFailurePolicyRule", True, "keep")},
    "SuccessPolicy": {1: Field("rules", "SuccessPolicyRule", True, "keep")},
    "JobCondition": {
        1: keep("type"),
        2: keep("status"),
        3: f("lastProbeTime", "Time"),
        4: f("lastTransitionTime", "Time"),
        5: f("reason"),
        6: f("message"),
    },
    "UncountedTerminatedPods": {1: rep("succeeded"), 2: rep("failed")},
    "JobTemplateSpec": {1: keep("metadata", "ObjectMeta"), 2: keep("spec", "JobSpec")},
    "PodFailurePolicyRule": {
        1: keep("action"),
        2: opt("onExitCodes", "PodFailurePolicyOnExitCodesRequirement"),
        3: rep("onPodConditions", "PodFailurePolicyOnPodConditionsPattern"),
    },
    "SuccessPolicyRule": {1: opt("succeededIndexes", "string"), 2: opt("succeededCount", "int32")},
    "PodFailurePolicyOnExitCodesRequirement": {
        1: opt("containerName", "string"),
        2: keep("operator"),
        3: Field("values", "int32", True, "keep"),
    },
    "PodFailurePolicyOnPodConditionsPattern": {1: keep("type"), 2: keep("status")},
    # rbac.authorization.k8s.io/v1
    "Role": {1: f("metadata", "ObjectMeta"), 2: rep("rules", "PolicyRule")},
    "ClusterRole": {1: f("metadata", "ObjectMeta"), 2: rep("rules", "PolicyRule")},
    "PolicyRule": {
        1: Field("verbs", "string", True, "keep"),
        2: rep("apiGroups"),
        3: rep("resources"),
        4: rep("resourceNames"),
        5: rep("nonResourceURLs"),
    },
    "RoleBinding": {
        1: f("metadata", "ObjectMeta"),
        2: rep("subjects", "Subject"),
        3: keep("roleRef", "RoleRef"),
    },
    "ClusterRoleBinding": {
        1: f("metadata", "ObjectMeta"),
        2: rep("subjects", "Subject"),
        3: keep("roleRef", "RoleRef"),
    },
    "Subject": {1: keep("kind"), 2: f("apiGroup"), 3: keep("name"), 4: f("namespace")},
    "RoleRef": {1: keep("apiGroup"), 2: keep("kind"), 3: keep("name")},
    # scheduling.k8s.io/v1
    "PriorityClass": {
        1: f("metadata", "ObjectMeta"),
        2: keep("value", "int32"),
        3: f("globalDefault", "bool"),
        4: f("description"),
        5: opt("preemptionPolicy", "string"),
    },
    # policy/v1
    "PodDisruptionBudget": _typed("PodDisruptionBudgetSpec", "PodDisruptionBudgetStatus"),
    "PodDisruptionBudgetSpec": {
        1: opt("minAvailable", "IntOrString"),
        2: opt("selector", "LabelSelector"),
        3: opt("maxUnavailable", "IntOrString"),
        4: opt("unhealthyPodEvictionPolicy", "string"),
    },
    "PodDisruptionBudgetStatus": {
        1: f("observedGeneration", "int64"),
        3: keep("disruptionsAllowed", "int32"),
        4: keep("currentHealthy", "int32"),
        5: keep("desiredHealthy", "int32"),
        6: keep("expectedPods", "int32"),
    },
    # networking.k8s.io/v1
    "Ingress": _typed("IngressSpec", "IngressStatus"),
    "IngressSpec": {
        1: opt("defaultBackend", "IngressBackend"),
        2: rep("tls", "IngressTLS"),
        3: rep("rules", "IngressRule"),
        4: opt("ingressClassName", "string"),
    },
    "IngressTLS": {1: rep("hosts"), 2: f("secretName")},
    # The rule's value is embedded in Go and so inlined in JSON (`http` sits on the rule).
    "IngressRule": {1: f("host"), 2: Field("", "IngressRuleValue", False, "inline")},
    "IngressRuleValue": {1: opt("http", "HTTPIngressRuleValue")},
    "HTTPIngressRuleValue": {1: Field("paths", "HTTPIngressPath", True, "keep")},
    "HTTPIngressPath": {1: f("path"), 2: keep("backend", "IngressBackend"), 3: opt("pathType", "string")},
    "IngressBackend": {4: opt("service", "IngressServiceBackend")},
    "IngressServiceBackend": {1: keep("name"), 2: f("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: f("name"), 2: f("number", "int32")},
    "IngressStatus": {1: f("loadBalancer", "IngressLoadBalancerStatus")},
    "IngressLoadBalancerStatus": {},
    # certificates.k8s.io/v1
    "CertificateSigningRequest": _typed("CertificateSigningRequestSpec", "CertificateSigningRequestStatus"),
    "CertificateSigningRequestSpec": {
        1: keep("request", "bytes"),
        2: f("username"),
        3: f("uid"),
        4: rep("groups"),
        5: rep("usages"),
        6: f("extra", "map:ExtraValue"),
        7: keep("signerName"),
        8: opt("expirationSeconds", "int32"),
    },
    "ExtraValue": {1: rep("items")},
    "CertificateSigningRequestStatus": {
        1: rep("conditions", "CertificateSigningRequestCondition"),
        2: f("certificate", "bytes"),
    },
    "CertificateSigningRequestCondition": {
        1: keep("type"),
        2: f("reason"),
        3: f("message"),
        4: f("lastUpdateTime", "Time"),
        5: f("lastTransitionTime", "Time"),
        6: keep("status"),
    },
    # authorization.k8s.io/v1 and authentication.k8s.io/v1
    "SelfSubjectAccessReview": _typed("SelfSubjectAccessReviewSpec", "SubjectAccessReviewStatus"),
    "SelfSubjectAccessReviewSpec": {
        1: opt("resourceAttributes", "ResourceAttributes"),
        2: opt("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: f("namespace"),
        2: f("verb"),
        3: f("group"),
        4: f("version"),
        5: f("resource"),
        6: f("subresource"),
        7: f("name"),
    },
    "NonResourceAttributes": {1: f("path"), 2: f("verb")},
    "SubjectAccessReviewStatus": {
        1: keep("allowed", "bool"),
        2: f("reason"),
        3: f("evaluationError"),
        4: f("denied", "bool"),
    },
    "SelfSubjectRulesReview": _typed("SelfSubjectRulesReviewSpec", "SubjectRulesReviewStatus"),
    "SelfSubjectRulesReviewSpec": {1: f("namespace")},
    "SubjectRulesReviewStatus": {3: keep("incomplete", "bool"), 4: f("evaluationError")},
    # authentication.k8s.io/v1 TokenRequest (serviceaccounts/token)
    "TokenRequest": _typed("TokenRequestSpec", "TokenRequestStatus"),
    "TokenRequestStatus": {1: f("token"), 2: f("expirationTimestamp", "Time")},
    "TokenRequestSpec": {
        1: Field("audiences", "string", True, "keep"),
        3: f("boundObjectRef", "BoundObjectReference"),
        4: opt("expirationSeconds", "int64"),
    },
    "BoundObjectReference": {1: f("kind"), 2: f("apiVersion"), 3: f("name"), 4: f("uid")},
    "SelfSubjectReview": {1: f("metadata", "ObjectMeta"), 2: f("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: f("userInfo", "UserInfo")},
    "UserInfo": {1: f("username"), 2: f("uid"), 3: rep("groups"), 4: f("extra", "map:ExtraValue")},
}

# Which message a kind's raw bytes hold (the envelope names the kind).
KINDS = {
    "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Service", "ResourceQuota", "Deployment", "Job",
    "CronJob", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "PriorityClass",
    "PodDisruptionBudget", "Ingress", "CertificateSigningRequest", "SelfSubjectAccessReview",
    "SelfSubjectRulesReview", "SelfSubjectReview", "TokenRequest",
}  # fmt: skip


# ----------------------------------------------------------------- wire format


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) in wire order."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes, micro: bool = False) -> str | None:
    seconds = nanos = 0
    for number, _, value in _fields(data):
        if number == 1 and isinstance(value, int):
            seconds = _signed(value)
        elif number == 2 and isinstance(value, int):
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None  # Go's zero time marshals as null
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes) -> int | str:
    kind, number, text = 0, 0, ""
    for field, _, value in _fields(data):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, int):
            number = _signed(value)
        elif field == 3 and isinstance(value, bytes):
            text = value.decode()
    return text if kind == 1 else number


def _scalar(type_: str, wire: int, value: int | bytes, where: str) -> Any:
    if type_ in ("int32", "int64", "bool"):
        if not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a number")
        if type_ == "bool":
            return value != 0
        number = _signed(value)
        if type_ == "int32" and not -(1 << 31) <= number < 1 << 31:
            raise ProtobufError(f"{where}: int32 out of range")
        return number
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected length-delimited data")
    if type_ == "string":
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise ProtobufError(f"{where}: not UTF-8") from exc
    if type_ == "bytes":
        return base64.b64encode(value).decode()
    if type_ == "Time":
        return _time(value)
    if type_ == "MicroTime":
        return _time(value, micro=True)
    if type_ == "Quantity":
        fields = _fields(value)
        return next((v.decode() for n, _, v in fields if n == 1 and isinstance(v, bytes)), "")
    if type_ == "IntOrString":
        return _int_or_string(value)
    return _message(type_, value, where)


def _is_zero(value: Any) -> bool:
    # Go's omitempty: the zero value of the field's type.
    return (
        value is None
        or value is False
        or (not isinstance(value, bool) and value in ("", 0))
        or (isinstance(value, (dict, list)) and not value)
    )


_NUMBERS = ("int32", "int64", "bool")


def _packed(type_: str, data: bytes, where: str) -> list[Any]:
    """A packed repeated number (protobuf parsers accept them whichever way the writer chose)."""
    items: list[Any] = []
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        items.append(_scalar(type_, 0, value, where))
    return items


def _message(name: str, data: bytes, where: str) -> dict[str, Any]:
    schema = MESSAGES.get(name)
    if schema is None:
        raise ProtobufError(f"{where}: message {name} is not known")
    out: dict[str, Any] = {}
    # Keys whose zero value is kept: a Go pointer that was set, a field without omitempty, and
    # whatever an embedded (inline) struct already decided to keep.
    explicit: set[str] = set()
    for number, wire, value in _fields(data):
        field = schema.get(number)
        if field is None:
            raise ProtobufError(f"{where}: field {number} of {name} is not known to the sandbox")
        path = f"{where}.{field.name}" if field.name else where
        if field.type.startswith("map:"):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{path}: expected a map entry")
            key, item = "", None
            for entry_number, entry_wire, entry_value in _fields(value):
                if entry_number == 1 and isinstance(entry_value, bytes):
                    key = entry_value.decode()
                elif entry_number == 2:
                    item = _scalar(field.type[4:], entry_wire, entry_value, f"{path}[{key}]")
            if field.type == "map:ExtraValue" and isinstance(item, dict):
                item = item.get("items", [])
            out.setdefault(field.name, {})[key] = "" if item is None and field.type == "map:string" else item
        elif field.presence == "inline":
            inner = _scalar(field.type, wire, value, path)
            out.update(inner)
            explicit.update(inner)
        elif field.repeated and wire == 2 and field.type in _NUMBERS and isinstance(value, bytes):
            out.setdefault(field.name, []).extend(_packed(field.type, value, path))
        elif field.repeated:
            out.setdefault(field.name, []).append(_scalar(field.type, wire, value, path))
        else:
            out[field.name] = _scalar(field.type, wire, value, path)
        if field.presence in ("opt", "keep"):
            explicit.add(field.name)
    return {
        key: value
        for key, value in out.items()
        if (key in explicit and value is not None) or not _is_zero(value)
    }


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body, or ProtobufError."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic number")
    type_meta: dict[str, Any] = {}
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            type_meta = _message("TypeMeta", value, "typeMeta")
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number in (3, 4) and isinstance(value, bytes) and value:
            raise ProtobufError("encoded or nested content types are not supported")
    kind = str(type_meta.get("kind") or "")
    if kind not in KINDS:
        raise ProtobufError(f"protobuf bodies of kind {kind or '(none)'} are not known to the sandbox")
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **_message(kind, raw, kind)}
