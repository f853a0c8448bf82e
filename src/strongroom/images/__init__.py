"""OpenShift internal images: an ImageStream's images copied to the backup location and back.

OADP's ``openshift`` plugin backs an application up "with its internal
images": the images OpenShift ImageStreams keep in the cluster's internal
registry are copied into the backup location, so that a restored application
can still pull them. strongroom does the same with real components:

* ``imagestreams`` (pure): which images of an ImageStream are internal, where
  their copies live, and the ImageStream rewritten for a restore;
* ``registry``: ``LocationRegistry``, Debian's ``docker-registry``
  (Distribution 2.8) on loopback with the location as storage
  (``<prefix>/plugins/images``);
* ``copy``: ``ImageCopier``, skopeo copies verified by digest, and ``exists``;
* ``transfer``: ``ImageBackup`` and ``ImageRestore``, every image of an
  ImageStream with per-image results.
"""

from __future__ import annotations

from strongroom.images.copy import ImageCopier, ImageCopyError, RegistryCredentials, RegistryEndpoint
from strongroom.images.imagestreams import (
    OPENSHIFT_INTERNAL_REGISTRY,
    ImageReference,
    ImageStreamImages,
    InternalImage,
    backup_reference,
    backup_repository,
    internal_hosts,
    internal_images,
    rewrite_for_restore,
)
from strongroom.images.registry import LocationRegistry, images_root
from strongroom.images.transfer import (
    ImageBackup,
    ImageRestore,
    ImageResult,
    ImageStreamResult,
    Outcome,
    RestoredImageStream,
)

__all__ = [
    "OPENSHIFT_INTERNAL_REGISTRY",
    "ImageBackup",
    "ImageCopier",
    "ImageCopyError",
    "ImageReference",
    "ImageRestore",
    "ImageResult",
    "ImageStreamImages",
    "ImageStreamResult",
    "InternalImage",
    "LocationRegistry",
    "Outcome",
    "RegistryCredentials",
    "RegistryEndpoint",
    "RestoredImageStream",
    "backup_reference",
    "backup_repository",
    "images_root",
    "internal_hosts",
    "internal_images",
    "rewrite_for_restore",
]
