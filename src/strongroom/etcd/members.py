"""etcd membership: who the members are, how healthy they are, and replacing one without losing quorum.

The seed's runbook for an unhealthy member is a sequence of ``etcdctl member
list``, ``endpoint health``, ``member remove`` and ``member add`` typed by
hand, where one wrong ID or a removal at the wrong moment loses quorum. This
module answers the questions first (per-member status, latency, ``hashkv``
agreement) and refuses a change that would leave the cluster without a
majority. A replacement joins as a learner and is promoted only once it has
caught up, so it never counts towards quorum before it can vote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strongroom.errors import ConflictError, NotFoundError, StrongroomError, UnavailableError, UsageError
from strongroom.etcd.connection import RPC_ERRORS, EtcdTarget, etcd_error, open_client
from strongroom.etcd.snapshot import MemberInfo, member_info

__all__ = [
    "ClusterSurvey",
    "Member",
    "MemberHealth",
    "add_learner",
    "classify_member",
    "list_members",
    "plan_replace",
    "promote_when_ready",
    "remove_member",
    "survey",
]

Say = Callable[[str], None]


@dataclass(frozen=True)
class Member:
    """A member as MemberList reports it."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def hex_id(self) -> str:
        return f"{self.id:x}"

    @property
    def started(self) -> bool:
        # A member added but never started has no name and no client URLs yet.
        return bool(self.name)


@dataclass
class MemberHealth:
    member: Member
    status: MemberInfo | None = None
    healthy: bool = False
    latency_ms: float | None = None
    error: str | None = None
    hash_kv: int | None = None
    explanation: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        status = self.status
        return {
            "id": self.member.hex_id,
            "name": self.member.name,
            "peerURLs": list(self.member.peer_urls),
            "clientURLs": list(self.member.client_urls),
            "isLearner": self.member.is_learner,
            "healthy": self.healthy,
            "latencyMs": round(self.latency_ms, 2) if self.latency_ms is not None else None,
            "error": self.error,
            "leader": status is not None and status.leader == self.member.id,
            "raftIndex": status.raft_index if status else None,
            "raftTerm": status.raft_term if status else None,
            "dbSize": status.db_size if status else None,
            "version": status.version if status else None,
            "hashKV": self.hash_kv,
            "explanation": self.explanation,
        }


@dataclass
class ClusterSurvey:
    cluster_id: int
    members: list[MemberHealth]
    hash_revision: int | None = None

    @property
    def leader_id(self) -> int | None:
        for health in self.members:
            if health.status is not None and health.status.leader:
                return health.status.leader
        return None

    @property
    def voting(self) -> list[MemberHealth]:
        return [h for h in self.members if not h.member.is_learner]

    @property
    def hashes_agree(self) -> bool | None:
        hashes = {h.hash_kv for h in self.members if h.hash_kv is not None}
        if len([h for h in self.members if h.hash_kv is not None]) < 2:
            return None
        return len(hashes) == 1

    def by_name(self, name: str) -> MemberHealth:
        for health in self.members:
            if health.member.name == name or health.member.hex_id == name.lower():
                return health
        names = ", ".join(h.member.name or h.member.hex_id for h in self.members)
        raise NotFoundError(f"etcd has no member named {name!r}", hint=f"members: {names}")

    def to_json(self) -> dict[str, Any]:
        return {
            "clusterID": f"{self.cluster_id:x}",
            "leader": f"{self.leader_id:x}" if self.leader_id else None,
            "hashRevision": self.hash_revision,
            "hashesAgree": self.hashes_agree,
            "members": [h.to_json() for h in self.members],
        }


async def list_members(target: EtcdTarget) -> tuple[int, list[Member]]:
    """MemberList from the first endpoint that answers: the cluster ID and the members."""
    errors: list[StrongroomError] = []
    for endpoint in target.endpoints:
        try:
            async with open_client(target, endpoint) as client:
                # Serializable: a cluster that lost quorum must still say who its members are.
                response = await client.cluster.member_list(linearizable=False, timeout=target.dial_timeout)
        except UsageError:
            raise  # the same for every endpoint: unreadable TLS files, a malformed endpoint
        except StrongroomError as exc:
            errors.append(exc)
            continue
        except RPC_ERRORS as exc:
            errors.append(etcd_error(exc, endpoint, "a member list"))
            continue
        members = [
            Member(
                id=int(m.ID),
                name=str(m.name),
                peer_urls=tuple(m.peerURLs),
                client_urls=tuple(m.clientURLs),
                is_learner=bool(m.isLearner),
            )
            for m in response.members
        ]
        return int(response.header.cluster_id), members
    if len(errors) == 1:
        raise errors[0]
    raise UnavailableError(
        "no etcd endpoint answered: " + "; ".join(e.message for e in errors), hint=errors[0].hint
    )


async def _probe(target: EtcdTarget, member: Member, timeout: float) -> MemberHealth:
    health = MemberHealth(member)
    if not member.client_urls:
        health.error = "never started (no client URL yet)" if not member.started else "no client URL"
        return health
    endpoint = member.client_urls[0]
    try:
        health.status = await member_info(target, endpoint, timeout=timeout)
        if member.is_learner:
            health.healthy = True
            return health
        async with open_client(target, endpoint) as client:
            started = time.monotonic()
            # etcdctl's endpoint health: a linearizable read that needs a leader and a quorum.
            await client.kv.get("health", timeout=timeout)
            health.latency_ms = (time.monotonic() - started) * 1000
        health.healthy = not health.status or health.status.leader != 0
        if not health.healthy:
            health.error = "no leader"
    except StrongroomError as exc:
        health.error = exc.message
    except RPC_ERRORS as exc:
        health.error = etcd_error(exc, endpoint, "a health check").message
    return health


async def survey(target: EtcdTarget, *, hashkv: bool = True, timeout: float | None = None) -> ClusterSurvey:
    """Every member's status, health and latency; with ``hashkv``, each member's hash at one revision."""
    cluster_id, members = await list_members(target)
    timeout = timeout or target.dial_timeout
    healths = list(await asyncio.gather(*(_probe(target, m, timeout) for m in members)))
    result = ClusterSurvey(cluster_id, healths)
    if hashkv:
        reachable = [h for h in healths if h.status is not None]
        if reachable:
            revision = min(h.status.revision for h in reachable if h.status is not None)
            result.hash_revision = revision
            await asyncio.gather(*(_hash(target, h, revision, timeout) for h in reachable))
    return result


async def _hash(target: EtcdTarget, health: MemberHealth, revision: int, timeout: float) -> None:
    endpoint = health.member.client_urls[0]
    try:
        async with open_client(target, endpoint) as client:
            response = await client.maintenance.hash_kv(revision, timeout=timeout)
        health.hash_kv = int(response.hash)
    except RPC_ERRORS as exc:
        health.explanation.append(f"hashkv failed: {etcd_error(exc, endpoint, 'hashkv').message}")


def classify_member(
    name: str, node: dict[str, Any] | None, machine: dict[str, Any] | None, pod: dict[str, Any] | None
) -> list[str]:
    """The seed's reading of an unhealthy member: machine not running, node not ready, etcd pod crashlooping."""
    reasons: list[str] = []
    if machine is not None:
        phase = (machine.get("status") or {}).get("phase")
        if phase and phase != "Running":
            reasons.append(
                f"machine {machine['metadata']['name']} is {phase}, not Running: the machine is not running; "
                "replace the member once a new machine is up"
            )
    if node is None:
        reasons.append(f"no node named {name}: the machine may be gone")
    else:
        ready = next(
            (c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), None
        )
        if ready is None or ready.get("status") != "True":
            reasons.append(f"node {name} is NotReady ({(ready or {}).get('reason', 'no Ready condition')})")
        for taint in node.get("spec", {}).get("taints", []) or []:
            if taint.get("key") == "node.kubernetes.io/unreachable":
                reasons.append(f"node {name} has the unreachable taint ({taint.get('effect')})")
    if pod is not None:
        for status in pod.get("status", {}).get("containerStatuses", []) or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                reasons.append(
                    f"etcd pod {pod['metadata']['name']} container {status.get('name')} is crashlooping "
                    f"({status.get('restartCount', 0)} restarts): the member's data may be damaged; "
                    "replace the member"
                )
    return reasons


@dataclass
class ReplacePlan:
    member: Member
    survey: ClusterSurvey
    new_name: str
    peer_urls: list[str]
    steps: list[str]
    resume: Member | None = None  # a learner of an earlier run, still to be promoted


def plan_replace(
    cluster: ClusterSurvey,
    name: str,
    *,
    new_name: str | None,
    peer_urls: Sequence[str],
    force: bool,
    snapshot_problem: str | None,
) -> ReplacePlan:
    """Decide and check a replacement; raises with the reason when it would be unsafe."""
    if not peer_urls or any("://" not in u for u in peer_urls):
        raise UsageError("the replacement needs --peer-urls https://HOST:2380")
    resume = next(
        (
            h.member
            for h in cluster.members
            if h.member.is_learner and sorted(h.member.peer_urls) == sorted(peer_urls)
        ),
        None,
    )
    try:
        target = cluster.by_name(name).member
    except NotFoundError:
        if resume is None:
            raise
        target = Member(0, name, (), (), False)
    if target.is_learner:
        raise UsageError(f"{name} is a learner; remove it with etcdctl member remove {target.hex_id}")
    if snapshot_problem and not force:
        raise ConflictError(
            f"refusing to change membership: {snapshot_problem}",
            hint="take and verify one first (strongroom etcd snapshot save ... && strongroom etcd snapshot verify "
            "latest), or pass --force",
        )
    voting = [h for h in cluster.voting if h.member.id != target.id]
    healthy = [h for h in voting if h.healthy]
    quorum = len(voting) // 2 + 1
    if target.id and len(healthy) < quorum:
        raise ConflictError(
            f"removing {name} would leave {len(healthy)} healthy of {len(voting)} voting members, "
            f"fewer than the {quorum} a quorum needs; nothing was changed",
            hint="bring the other members back first, or recover from a snapshot (strongroom etcd recover)",
        )
    new_name = new_name or name
    steps = []
    if target.id:
        steps.append(f"remove member {name} ({target.hex_id}, {','.join(target.peer_urls)})")
    steps += [
        f"add {new_name} as a learner with peer URLs {','.join(peer_urls)}",
        f"wait until {new_name} is started and has caught up with the leader, then promote it to a voting member",
        "check that every member is healthy and the member count is back",
    ]
    return ReplacePlan(target, cluster, new_name, list(peer_urls), steps, resume)


async def remove_member(target: EtcdTarget, member: Member) -> None:
    endpoints = [u for h in [member] for u in h.client_urls]
    others = EtcdTarget(
        tuple(e for e in target.endpoints if e not in endpoints) or target.endpoints,
        target.tls,
        target.dial_timeout,
        target.source,
    )
    await _cluster_call(others, "member remove", lambda c: c.cluster.member_remove(member.id, timeout=10))


async def add_learner(target: EtcdTarget, peer_urls: Sequence[str], *, retry_for: float = 30.0) -> Member:
    """MemberAdd as a learner, retrying while etcd refuses a change right after another one."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            response = await _cluster_call(
                target,
                "member add",
                lambda c: c.cluster.member_add(list(peer_urls), is_learner=True, timeout=10),
            )
            break
        except StrongroomError as exc:
            if "unhealthy cluster" not in exc.message and "not enough started" not in exc.message:
                raise
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)
    m = response.member
    return Member(int(m.ID), str(m.name), tuple(m.peerURLs), tuple(m.clientURLs), True)


async def promote_when_ready(target: EtcdTarget, member_id: int, *, timeout: float, say: Say) -> None:
    """Promote the learner once etcd accepts it as caught up; waits up to ``timeout``."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            await _cluster_call(
                target, "member promote", lambda c: c.cluster.member_promote(member_id, timeout=10)
            )
            return
        except StrongroomError as exc:
            text = exc.message.lower()
            if "not ready" not in text and "in sync" not in text and "unhealthy" not in text:
                raise
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"learner {member_id:x} did not catch up within {timeout:.0f}s; it stays a learner",
                    hint="start it (see the configuration printed above), then run the same command again "
                    "to promote it",
                ) from exc
            if not told:
                say("waiting for the learner to start and catch up with the leader ...")
                told = True
            await asyncio.sleep(0.5)


async def _cluster_call(target: EtcdTarget, what: str, call: Callable[[Any], Any]) -> Any:
    errors: list[StrongroomError] = []
    for endpoint in target.endpoints:
        try:
            async with open_client(target, endpoint) as client:
                return await call(client)
        except UsageError:
            raise  # the same for every endpoint: unreadable TLS files, a malformed endpoint
        except StrongroomError as exc:
            errors.append(exc)
        except RPC_ERRORS as exc:
            error = etcd_error(exc, endpoint, what)
            if not isinstance(error, UnavailableError):
                raise error from exc
            errors.append(error)
    raise errors[0] if errors else UnavailableError(f"no endpoint for {what}")
