"""The only package that talks to the Kubernetes API.

``KubeClient`` opens a cluster from a kubeconfig and offers discovery,
paginated lists and object writes on plain dicts; ``Discovery`` is the
frozen answer to "what does this cluster serve, and at which version";
``KubeError`` and its subclasses are every failure, by metav1.Status reason.
The engine depends on these names only, never on kubernetes-asyncio.
"""

from __future__ import annotations

from strongroom.kube.client import (
    CONNECT_TIMEOUT,
    POOL_SIZE,
    REQUEST_TIMEOUT,
    JsonObject,
    KubeClient,
    PatchType,
    collection_path,
    item_path,
)
from strongroom.kube.discovery import Discovery, resources_from_list, version_priority
from strongroom.kube.errors import (
    KubeAlreadyExists,
    KubeConfigError,
    KubeConflict,
    KubeError,
    KubeExpired,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
)
from strongroom.model.resources import ApiResource

__all__ = [
    "CONNECT_TIMEOUT",
    "POOL_SIZE",
    "REQUEST_TIMEOUT",
    "ApiResource",
    "Discovery",
    "JsonObject",
    "KubeAlreadyExists",
    "KubeClient",
    "KubeConfigError",
    "KubeConflict",
    "KubeError",
    "KubeExpired",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubeUnavailable",
    "PatchType",
    "collection_path",
    "item_path",
    "resources_from_list",
    "version_priority",
]
