"""Installing strongroom into a cluster and removing it again.

``manifests`` renders the resources (pure: options in, dicts out);
``installer`` applies them through ``KubeClient`` and removes them, never
touching object storage, so an uninstall keeps every stored backup. The
installer is imported from its module (``strongroom.deploy.installer``), not
here: it brings in the Kubernetes client, which every command would pay for
at start-up otherwise.
"""

from __future__ import annotations

from strongroom.deploy.manifests import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    LOG_LEVELS,
    InstallOptions,
    Resources,
    render,
)

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "LOG_LEVELS",
    "InstallOptions",
    "Resources",
    "render",
]
