"""Restoring one member's data directory from a snapshot, as ``etcdutl snapshot restore`` does, safely.

The restore itself is etcd's (``etcdutl``); what strongroom adds is what the
runbook leaves to the administrator: the snapshot is verified first, the data
directory must be empty (nothing is ever overwritten), the cluster gets a new
token so that old members cannot rejoin it by mistake, and the revision is
bumped where the tool can, or the risk of not doing so is said plainly.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from strongroom.errors import ConflictError, UsageError
from strongroom.etcd.tools import EtcdTool

__all__ = [
    "BUMP_REVISION",
    "RestorePlan",
    "new_cluster_token",
    "no_bump_warning",
    "parse_initial_cluster",
    "plan_restore",
    "restore_data_dir",
]

# What OpenShift's cluster-restore.sh bumps by: far beyond any revision a cluster reaches between backups.
BUMP_REVISION: Final = 1_000_000_000


def new_cluster_token() -> str:
    return f"strongroom-restore-{secrets.token_hex(6)}"


def parse_initial_cluster(text: str) -> dict[str, list[str]]:
    """``n1=https://a:2380,n2=https://b:2380`` -> {name: [peer URLs]} (a name may repeat for several URLs)."""
    out: dict[str, list[str]] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name or "://" not in url:
            raise UsageError(
                f"malformed --initial-cluster entry {item!r}", hint="use NAME=PEER_URL[,NAME=PEER_URL...]"
            )
        out.setdefault(name, []).append(url)
    if not out:
        raise UsageError("--initial-cluster is empty")
    return out


def no_bump_warning(tool: EtcdTool, revision: int | None) -> str:
    at = f" {revision}" if revision else ""
    return (
        f"etcdutl {tool.version_text} cannot bump the revision (that needs etcd 3.5.10 or later), so the restored "
        f"cluster starts again at the snapshot's revision{at}, lower than the revisions clients last saw. "
        "Watchers and informers that resume from a newer resourceVersion can miss changes or keep stale objects "
        "until they list again. After the restore restart kube-apiserver, kube-controller-manager, "
        "kube-scheduler and every operator or controller that watches the API (on OpenShift: force a new "
        "rollout of etcd, kube-apiserver, kube-controller-manager and kube-scheduler, and restart the kubelet "
        "on every node), or restore with etcdutl 3.5.10 or later (--etcdutl PATH)."
    )


@dataclass
class RestorePlan:
    """One member's restore, decided before anything is touched."""

    data_dir: Path
    name: str
    initial_cluster: str
    peer_urls: list[str]
    token: str
    bump_revision: int | None
    mark_compacted: bool
    warnings: list[str] = field(default_factory=list)

    def args(self, snapshot: Path, data_dir: Path, *, skip_hash_check: bool = False) -> list[str]:
        args = [
            "snapshot",
            "restore",
            str(snapshot),
            "--data-dir",
            str(data_dir),
            "--name",
            self.name,
            "--initial-cluster",
            self.initial_cluster,
            "--initial-advertise-peer-urls",
            ",".join(self.peer_urls),
            "--initial-cluster-token",
            self.token,
        ]
        if self.bump_revision:
            args += ["--bump-revision", str(self.bump_revision)]
        if self.mark_compacted:
            args.append("--mark-compacted")
        if skip_hash_check:
            args.append("--skip-hash-check")
        return args

    def describe(self) -> list[str]:
        bump = (
            f"bump the revision by {self.bump_revision} and mark it compacted"
            if self.bump_revision
            else "keep the snapshot's revision (this etcdutl cannot bump it)"
        )
        return [
            f"restore the snapshot into {self.data_dir} as member {self.name} ({','.join(self.peer_urls)})",
            f"initial cluster {self.initial_cluster}, new cluster token {self.token}",
            bump,
        ]


def plan_restore(
    tool: EtcdTool,
    *,
    data_dir: Path,
    name: str,
    initial_cluster: str | None,
    peer_urls: str,
    token: str | None = None,
    bump_revision: bool = True,
    snapshot_revision: int | None = None,
    require_empty: bool = True,
) -> RestorePlan:
    """Check the arguments and (unless the caller moves it aside first) the data directory; nothing is written."""
    urls = [u.strip() for u in peer_urls.split(",") if u.strip()]
    if not urls or any("://" not in u for u in urls):
        raise UsageError(
            f"malformed --initial-advertise-peer-urls {peer_urls!r}", hint="use https://HOST:2380"
        )
    cluster_text = initial_cluster or ",".join(f"{name}={u}" for u in urls)
    cluster = parse_initial_cluster(cluster_text)
    if name not in cluster:
        raise UsageError(
            f"member {name!r} is not in --initial-cluster ({', '.join(cluster)})",
            hint="--name must be one of the names in --initial-cluster",
        )
    if sorted(cluster[name]) != sorted(urls):
        raise UsageError(
            f"--initial-advertise-peer-urls {','.join(urls)} differs from {name}'s URL in --initial-cluster "
            f"({','.join(cluster[name])})"
        )
    if require_empty:
        check_empty(data_dir)
    plan = RestorePlan(
        data_dir=data_dir,
        name=name,
        initial_cluster=cluster_text,
        peer_urls=urls,
        token=token or new_cluster_token(),
        bump_revision=BUMP_REVISION if bump_revision and tool.supports_bump_revision else None,
        mark_compacted=bump_revision and tool.supports_bump_revision,
    )
    if bump_revision and not tool.supports_bump_revision:
        plan.warnings.append(no_bump_warning(tool, snapshot_revision))
    return plan


def check_empty(data_dir: Path) -> None:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise ConflictError(
            f"the data directory {data_dir} is not empty; nothing was changed",
            hint="move it aside first (strongroom etcd recover does that for you) or choose another --data-dir",
        )


def restore_data_dir(
    plan: RestorePlan, snapshot: Path, tool: EtcdTool, *, skip_hash_check: bool = False
) -> None:
    """Restore into a sibling directory and move it into place, so a failure leaves no half data dir."""
    check_empty(plan.data_dir)
    parent = plan.data_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{plan.data_dir.name}.restoring-{secrets.token_hex(4)}"
    try:
        tool.run(plan.args(snapshot, staging, skip_hash_check=skip_hash_check))
        os.chmod(staging, 0o700)
        if plan.data_dir.exists():
            plan.data_dir.rmdir()  # empty, checked above
        staging.rename(plan.data_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
