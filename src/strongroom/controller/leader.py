"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Two server replicas must never run the same backup, yet a standby should take
over quickly when the leader dies. Kubernetes' answer, used by every
controller manager and by Velero, is a Lease object: the leader writes its
identity and renews ``renewTime`` every few seconds; the others watch it and
take over when it has not changed for ``leaseDurationSeconds``. Writes carry
the resourceVersion they read, so when two replicas race, the API server
accepts one and answers the other 409 Conflict.

The rules follow client-go, because other tools read and write the same
Lease and operators know its behaviour:

* expiry is judged by *this* replica's clock, from when it last saw the lease
  change, never by comparing ``renewTime`` with the local time (the clocks of
  two nodes disagree);
* the leader gives up once it has failed to renew for ``renew_deadline``,
  which is shorter than the lease duration, so it stops working before a
  standby may start;
* on a clean shutdown the leader releases the lease (holder cleared, duration
  one second), so a standby takes over within a retry period rather than a
  lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strongroom.errors import UnavailableError, UsageError
from strongroom.kube import ApiResource, JsonObject, KubeAlreadyExists, KubeClient, KubeConflict, KubeError

__all__ = ["JITTER_FACTOR", "LEASES", "LeaderElector", "LeaseRecord"]

_log = logging.getLogger(__name__)

_GROUP, _VERSION, _RESOURCE = "coordination.k8s.io", "v1", "leases"
# The Lease type as kube-apiserver serves it; used when the caller has no discovery at hand.
LEASES = ApiResource(_GROUP, _VERSION, _RESOURCE, "Lease", True, verbs=frozenset({"get", "create", "update"}))
# client-go waits a retry period plus up to 1.2 times it between tries, so replicas spread out.
JITTER_FACTOR = 1.2
# A released lease says "expired after one second" to clients that ignore the empty holder.
_RELEASED_DURATION = 1


def _micro_time(moment: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says about leadership (client-go's LeaderElectionRecord)."""

    holder: str
    duration_s: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int

    @classmethod
    def from_lease(cls, lease: JsonObject) -> LeaseRecord:
        spec: dict[str, Any] = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_s=duration if isinstance(duration, int) else 0,
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=transitions if isinstance(transitions, int) else 0,
        )

    def spec(self) -> JsonObject:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_s,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


class LeaderElector:
    """Leadership of one replica (``identity``) over the Lease ``namespace/name``.

    ``acquire`` waits until this replica leads; ``hold`` renews until the
    lease is lost, then sets ``lost`` and returns; ``release`` hands the lease
    over on a clean shutdown. ``leading()`` does all three around a block.
    ``clock`` (monotonic seconds) times expiry and deadlines; ``wall`` stamps
    the lease.
    """

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_resource: ApiResource | None = None,
    ) -> None:
        if not identity:
            raise UsageError("leader election needs an identity", hint="use the pod's name")
        if lease_duration < 1:
            raise UsageError(f"lease duration {lease_duration:g}s is too short: a Lease counts whole seconds")
        if lease_duration <= renew_deadline:
            raise UsageError(
                f"the lease duration ({lease_duration:g}s) must be longer than the renew deadline "
                f"({renew_deadline:g}s)",
                hint="otherwise a standby may take over while the leader still works",
            )
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise UsageError(
                f"the renew deadline ({renew_deadline:g}s) must be longer than {JITTER_FACTOR:g} times "
                f"the retry period ({retry_period:g}s)",
                hint="otherwise one slow request makes the leader give up",
            )
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._wall = wall
        self._resource = lease_resource
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._leading = False
        self.lost = asyncio.Event()

    # -- state -----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def holder(self) -> str | None:
        """The holder this replica last saw in the lease ("" when released, None before the first look)."""
        return self._observed.holder if self._observed is not None else None

    def _log_extra(self) -> dict[str, str]:
        return {"lease": f"{self.namespace}/{self.name}", "identity": self.identity}

    async def _lease_resource(self) -> ApiResource:
        if self._resource is None:
            served = (await self._kube.discover()).served(_GROUP, _VERSION, _RESOURCE)
            if served is None:
                raise UnavailableError(
                    "the API server does not serve coordination.k8s.io/v1 leases",
                    hint="leader election needs Kubernetes 1.14 or later; run a single replica otherwise",
                )
            self._resource = served
        return self._resource

    # -- one round -------------------------------------------------------------

    def _observe(self, record: LeaseRecord, now: float) -> None:
        if record != self._observed:
            self._observed = record
            self._observed_at = now

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the lease: True when this replica holds it afterwards.

        A lease held by another replica is taken only once it has not changed
        for its duration, as seen from here. Losing a race (409 on create or
        on replace) is False, not an error; so is a failed request.
        """
        now, stamp = self._clock(), _micro_time(self._wall())
        duration = math.ceil(self.lease_duration)
        try:
            res = await self._lease_resource()
            lease = await self._kube.get(res, self.name, self.namespace)
            if lease is None:
                record = LeaseRecord(self.identity, duration, stamp, stamp, 0)
                body = {
                    "apiVersion": res.group_version,
                    "kind": res.kind,
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": record.spec(),
                }
                created = await self._kube.create(res, body, self.namespace)
                self._observe(LeaseRecord.from_lease(created), now)
                return True
            old = LeaseRecord.from_lease(lease)
            self._observe(old, now)
            if old.holder and old.holder != self.identity and self._observed_at + old.duration_s > now:
                return False
            if old.holder == self.identity:
                record = LeaseRecord(
                    self.identity, duration, old.acquire_time or stamp, stamp, old.transitions
                )
            else:
                record = LeaseRecord(self.identity, duration, stamp, stamp, old.transitions + 1)
            # The body keeps the resourceVersion read above: a lease changed since then is a 409.
            updated = await self._kube.replace(res, {**lease, "spec": record.spec()}, self.namespace)
            self._observe(LeaseRecord.from_lease(updated), now)
            return True
        except (KubeAlreadyExists, KubeConflict):
            _log.debug("another replica wrote the lease first", extra=self._log_extra())
            return False
        except KubeError as exc:
            _log.warning(
                "cannot read or write the leader lease: %s",
                exc,
                extra={**self._log_extra(), "error": exc.message},
            )
            return False

    # -- the loops ---------------------------------------------------------------

    def _jittered(self) -> float:
        return self.retry_period * (1 + random.random() * JITTER_FACTOR)

    async def acquire(self) -> None:
        """Wait until this replica holds the lease."""
        _log.info("waiting for the leader lease", extra=self._log_extra())
        reported: str | None = None
        while not await self.try_acquire_or_renew():
            if self.holder and self.holder != reported:
                reported = self.holder
                _log.info("standing by: %s leads", reported, extra={**self._log_extra(), "leader": reported})
            await asyncio.sleep(self._jittered())
        self._leading = True
        self.lost.clear()
        _log.info("became the leader", extra=self._log_extra())

    async def hold(self) -> None:
        """Renew the lease every retry period; return (with ``lost`` set) once it is lost.

        It is lost when another replica holds it, or when no renewal has
        succeeded for ``renew_deadline``. Cancel the call to stop renewing
        (then ``release``, or let the lease expire).
        """
        if not self._leading:
            raise RuntimeError("hold() needs the lease: call acquire() first")
        while True:
            await asyncio.sleep(self.retry_period)
            started = self._clock()
            while True:
                remaining = started + self.renew_deadline - self._clock()
                if remaining <= 0:
                    self._lose(f"no renewal succeeded within {self.renew_deadline:g}s")
                    return
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self.try_acquire_or_renew()
                except TimeoutError:
                    renewed = False
                if renewed:
                    break
                if self.holder and self.holder != self.identity:
                    self._lose(f"{self.holder} holds the lease now")
                    return
                await asyncio.sleep(min(self.retry_period, max(remaining, 0.0)))

    def _lose(self, reason: str) -> None:
        self._leading = False
        self.lost.set()
        _log.error("lost the leader lease: %s", reason, extra={**self._log_extra(), "reason": reason})

    async def release(self) -> bool:
        """Give the lease up so that a standby takes over at once; True when it was released.

        Nothing happens unless this replica holds it. A failure is logged,
        not raised: the lease then expires on its own.
        """
        if not self._leading and self.holder != self.identity:
            return False
        self._leading = False
        res = await self._lease_resource()
        stamp = _micro_time(self._wall())
        for _ in range(3):
            try:
                lease = await self._kube.get(res, self.name, self.namespace)
                if lease is None or LeaseRecord.from_lease(lease).holder != self.identity:
                    return False
                old = LeaseRecord.from_lease(lease)
                record = LeaseRecord("", _RELEASED_DURATION, stamp, stamp, old.transitions)
                updated = await self._kube.replace(res, {**lease, "spec": record.spec()}, self.namespace)
            except KubeConflict:
                continue
            except KubeError as exc:
                _log.warning(
                    "cannot release the leader lease; it expires on its own: %s",
                    exc,
                    extra={**self._log_extra(), "error": exc.message},
                )
                return False
            self._observe(LeaseRecord.from_lease(updated), self._clock())
            _log.info("released the leader lease", extra=self._log_extra())
            return True
        return False

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[asyncio.Event]:
        """``async with elector.leading() as lost:`` leads for the block; ``lost`` tells of an early loss.

        On leaving the block the renewal stops and the lease is released.
        """
        await self.acquire()
        renewal = asyncio.create_task(self.hold(), name=f"lease {self.namespace}/{self.name}")
        try:
            yield self.lost
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await asyncio.shield(self.release())
