"""strongroom: data protection for Kubernetes and OpenShift clusters.

Backs up and restores applications (API objects and volume data) to object
storage and protects the control plane (etcd), compatible with Velero and OADP.
"""

__version__ = "0.1.0"
