"""Installing strongroom into a cluster and removing it again.

``manifests`` renders the resources (pure: options in, dicts out);
``installer`` applies them through ``KubeClient`` and removes them, never
touching object storage, so an uninstall keeps every stored backup.
"""

from __future__ import annotations

from strongroom.deploy.installer import Change, Installer
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
    "Change",
    "InstallOptions",
    "Installer",
    "Resources",
    "render",
]
