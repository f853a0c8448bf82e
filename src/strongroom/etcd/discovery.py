"""What the cluster itself says about its etcd: where the members are, and why one is unhealthy.

An administrator should not have to copy endpoints and certificate paths out
of pod specs. The kube-apiserver's own flags (``--etcd-servers``,
``--etcd-cafile``, ``--etcd-certfile``, ``--etcd-keyfile``, as kubeadm and
most distributions run it) and, on OpenShift, the ``etcdctl`` container of an
etcd pod (its ``ETCDCTL_*`` environment) name them; their files live on the
control-plane host, found through the pod's hostPath volumes under
``--host-root``. The same reads explain an unhealthy member: its Machine, its
Node and its etcd pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.etcd.connection import EtcdTarget, TlsFiles, parse_endpoints
from strongroom.etcd.members import classify_member
from strongroom.kube import Discovery, KubeClient

__all__ = ["explain_members", "target_from_cluster", "target_from_pods"]

JsonObject = dict[str, Any]


def target_from_pods(pods: Sequence[Mapping[str, Any]], host_root: Path) -> EtcdTarget | None:
    """The etcd target the cluster's own pods use, with file paths mapped onto the host."""
    for pod in pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            flags = _flags([*(container.get("command") or []), *(container.get("args") or [])])
            if "etcd-servers" in flags:
                tls = TlsFiles(
                    ca=_host_path(pod, container, flags.get("etcd-cafile"), host_root),
                    cert=_host_path(pod, container, flags.get("etcd-certfile"), host_root),
                    key=_host_path(pod, container, flags.get("etcd-keyfile"), host_root),
                )
                return EtcdTarget(
                    parse_endpoints(flags["etcd-servers"], secure=tls.enabled),
                    tls,
                    source=f"kube-apiserver pod {pod['metadata'].get('name')}",
                )
            env = {e.get("name"): e.get("value") for e in container.get("env") or [] if e.get("value")}
            if env.get("ETCDCTL_ENDPOINTS"):
                tls = TlsFiles(
                    ca=_host_path(pod, container, env.get("ETCDCTL_CACERT"), host_root),
                    cert=_host_path(pod, container, env.get("ETCDCTL_CERT"), host_root),
                    key=_host_path(pod, container, env.get("ETCDCTL_KEY"), host_root),
                )
                return EtcdTarget(
                    parse_endpoints(str(env["ETCDCTL_ENDPOINTS"]), secure=tls.enabled),
                    tls,
                    source=f"etcd pod {pod['metadata'].get('name')}",
                )
    return None


async def target_from_cluster(kube: KubeClient, discovery: Discovery, host_root: Path) -> EtcdTarget | None:
    """kube-apiserver pods in kube-system (or openshift-kube-apiserver), else OpenShift's etcd pods."""
    pods_res = discovery.find("", "pods")
    if pods_res is None:
        return None
    candidates: list[JsonObject] = []
    for namespace, selector in (
        ("kube-system", "component=kube-apiserver"),
        ("openshift-etcd", "app=etcd"),
    ):
        candidates += await kube.list_all(pods_res, namespace=namespace, label_selector=selector)
    return target_from_pods(candidates, host_root)


async def explain_members(
    kube: KubeClient, discovery: Discovery, names: Sequence[str], *, etcd_namespace: str = "openshift-etcd"
) -> dict[str, list[str]]:
    """For each member name (a node name on OpenShift), the seed's reasons it may be unhealthy."""
    nodes_res = discovery.find("", "nodes")
    pods_res = discovery.find("", "pods")
    machines_res = discovery.find("machine.openshift.io", "machines")
    machines: list[JsonObject] = (
        await kube.list_all(machines_res, namespace="openshift-machine-api") if machines_res else []
    )
    pods: list[JsonObject] = []
    if pods_res is not None:
        for namespace, selector in ((etcd_namespace, "app=etcd"), ("kube-system", "component=etcd")):
            pods += await kube.list_all(pods_res, namespace=namespace, label_selector=selector)
    out: dict[str, list[str]] = {}
    for name in names:
        node = await kube.get(nodes_res, name) if nodes_res else None
        machine = next(
            (m for m in machines if ((m.get("status") or {}).get("nodeRef") or {}).get("name") == name), None
        )
        pod = next((p for p in pods if (p.get("spec") or {}).get("nodeName") == name), None)
        out[name] = classify_member(name, node, machine, pod)
    return out


def _flags(argv: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            out[key] = value
    return out


def _host_path(
    pod: Mapping[str, Any], container: Mapping[str, Any], path: str | None, host_root: Path
) -> Path | None:
    """A path inside the container, as the file on the host it is mounted from (under host_root)."""
    if not path:
        return None
    wanted = PurePosixPath(path)
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    best: tuple[int, PurePosixPath] | None = None
    for mount in container.get("volumeMounts") or []:
        mount_path = PurePosixPath(mount.get("mountPath", "/"))
        host = (volumes.get(mount.get("name")) or {}).get("hostPath", {}).get("path")
        if not host or not wanted.is_relative_to(mount_path):
            continue
        depth = len(mount_path.parts)
        if best is None or depth > best[0]:
            best = (depth, PurePosixPath(host) / wanted.relative_to(mount_path))
    resolved = best[1] if best else wanted
    return host_root / str(resolved).lstrip("/")
