"""Leader election on a real coordination.k8s.io/v1 Lease in the sandbox: one leader, fast hand-over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests.conftest import Sandbox
from tests.integration.sandboxapi import unique
from tests.runasync import run_async

from strongroom.controller.leader import LEASES, LeaderElector
from strongroom.errors import UsageError
from strongroom.kube import KubeClient, KubeConflict

pytestmark = pytest.mark.integration

# Short timings keep the tests quick; the bounds asserted are generous multiples of them.
LEASE_S, RENEW_S, RETRY_S = 2.0, 1.5, 0.2


@asynccontextmanager
async def client(sandbox: Sandbox) -> AsyncIterator[KubeClient]:
    async with await KubeClient.from_kubeconfig(sandbox.kubeconfig) as kube:
        yield kube


def elector(kube: Any, namespace: str, lease: str, identity: str, **kwargs: Any) -> LeaderElector:
    timings: dict[str, Any] = {
        "lease_duration": LEASE_S,
        "renew_deadline": RENEW_S,
        "retry_period": RETRY_S,
        "lease_resource": LEASES,
    }
    return LeaderElector(kube, namespace, lease, identity, **{**timings, **kwargs})


async def lease_spec(kube: KubeClient, namespace: str, lease: str) -> dict[str, Any]:
    doc = await kube.get(LEASES, lease, namespace)
    assert doc is not None
    spec: dict[str, Any] = doc["spec"]
    return spec


async def first_done(tasks: dict[str, asyncio.Task[None]], timeout: float) -> str:
    done, _ = await asyncio.wait(tasks.values(), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    assert done, f"nobody became the leader within {timeout}s"
    [winner] = [name for name, task in tasks.items() if task in done]
    return winner


async def cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@run_async
async def test_the_sandbox_serves_leases_and_refuses_a_stale_resource_version(sandbox: Sandbox) -> None:
    async with client(sandbox) as kube:
        served = (await kube.discover()).served("coordination.k8s.io", "v1", "leases")
        assert served is not None
        assert served.namespaced
        node_leases = await kube.list_all(served, namespace="kube-node-lease")
        assert node_leases, "nodes renew leases in kube-node-lease"

        name = unique("lease")
        created = await kube.create(
            served,
            {"metadata": {"name": name}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 5}},
            "default",
        )
        try:
            renewed = await kube.replace(
                served, {**created, "spec": {**created["spec"], "holderIdentity": "b"}}
            )
            assert renewed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
            with pytest.raises(KubeConflict):
                await kube.replace(served, {**created, "spec": {**created["spec"], "holderIdentity": "c"}})
            assert (await lease_spec(kube, "default", name))["holderIdentity"] == "b"
        finally:
            await kube.delete(served, name, "default")


@run_async
async def test_racing_electors_make_exactly_one_leader(sandbox: Sandbox, namespace: str) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        electors = [elector(kube, namespace, lease, f"replica-{i}") for i in range(5)]
        # Five first attempts at once on a missing lease: one create wins, the others get 409.
        results = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
        assert results.count(True) == 1
        winner = electors[results.index(True)]

        spec = await lease_spec(kube, namespace, lease)
        assert spec["holderIdentity"] == winner.identity
        assert spec["leaseDurationSeconds"] == 2
        assert spec["leaseTransitions"] == 0
        assert spec["acquireTime"] and spec["renewTime"]

        # The others keep waiting while the winner renews.
        await asyncio.wait_for(winner.acquire(), timeout=5)  # it holds the lease: at once
        holding = asyncio.create_task(winner.hold())
        waiting = {e.identity: asyncio.create_task(e.acquire()) for e in electors if e is not winner}
        try:
            done, _ = await asyncio.wait(waiting.values(), timeout=2 * LEASE_S)
            assert not done, "a second replica became the leader while the first renewed"
            assert winner.is_leader
            assert not winner.lost.is_set()
            assert (await lease_spec(kube, namespace, lease))["holderIdentity"] == winner.identity
        finally:
            await cancel(holding, *waiting.values())


@run_async
async def test_acquire_discovers_the_lease_resource_and_creates_the_lease(
    sandbox: Sandbox, namespace: str
) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        only = elector(kube, namespace, lease, "only", lease_resource=None)
        await asyncio.wait_for(only.acquire(), timeout=10)

        assert only.is_leader
        assert (await lease_spec(kube, namespace, lease))["holderIdentity"] == "only"


@run_async
async def test_a_released_lease_is_taken_over_within_a_few_retry_periods(
    sandbox: Sandbox, namespace: str
) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        # A long lease, so that waiting for it to expire could not pass for a hand-over.
        slow = {"lease_duration": 3 * LEASE_S, "renew_deadline": 2 * LEASE_S}
        first = elector(kube, namespace, lease, "first", **slow)
        second = elector(kube, namespace, lease, "second", **slow)
        async with first.leading() as lost:
            standby = asyncio.create_task(second.acquire())
            await asyncio.sleep(3 * RETRY_S)  # the standby has seen the lease held
            assert not standby.done()
            assert not lost.is_set()
        released_at = time.monotonic()
        try:
            await asyncio.wait_for(standby, timeout=3 * LEASE_S)
            took = time.monotonic() - released_at
        finally:
            await cancel(standby)

        assert second.is_leader
        assert not first.is_leader
        assert took < 1.5 * LEASE_S, f"the standby waited {took:.1f}s, as if the lease had not been released"
        spec = await lease_spec(kube, namespace, lease)
        assert spec["holderIdentity"] == "second"
        assert spec["leaseTransitions"] == 1  # one hand-over: first to second
        assert spec["leaseDurationSeconds"] == 6


@run_async
async def test_a_leader_that_stops_renewing_is_replaced_after_the_lease_duration(
    sandbox: Sandbox, namespace: str
) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        crashed = elector(kube, namespace, lease, "crashed")
        await crashed.acquire()
        renewal = asyncio.create_task(crashed.hold())
        standby_elector = elector(kube, namespace, lease, "standby")
        standby = asyncio.create_task(standby_elector.acquire())
        await asyncio.sleep(LEASE_S + 1)  # renewals keep the standby out for longer than a lease
        assert not standby.done()

        await cancel(renewal)  # the leader dies without releasing
        died_at = time.monotonic()
        try:
            await asyncio.wait_for(standby, timeout=5 * LEASE_S)
            took = time.monotonic() - died_at
        finally:
            await cancel(standby)

        assert standby_elector.is_leader
        # Not before the lease duration: the standby judges expiry by its own observation.
        assert took >= LEASE_S - 2 * RETRY_S, f"took over after {took:.1f}s, before the lease expired"
        assert (await lease_spec(kube, namespace, lease))["holderIdentity"] == "standby"


@run_async
async def test_a_leader_whose_lease_is_taken_notices_and_sets_lost(sandbox: Sandbox, namespace: str) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        leader = elector(kube, namespace, lease, "leader")
        await leader.acquire()
        holding = asyncio.create_task(leader.hold())
        try:
            doc = await kube.get(LEASES, lease, namespace)
            assert doc is not None
            await kube.replace(LEASES, {**doc, "spec": {**doc["spec"], "holderIdentity": "usurper"}})
            await asyncio.wait_for(leader.lost.wait(), timeout=RENEW_S + 5 * RETRY_S)
        finally:
            await cancel(holding)

        assert not leader.is_leader
        assert holding.done()
        # Losing is not a reason to write: the usurper keeps the lease.
        assert (await lease_spec(kube, namespace, lease))["holderIdentity"] == "usurper"


class RacingKube:
    """A client through which, between an elector's read and its write, another replica writes first."""

    def __init__(self, kube: KubeClient, interloper: Callable[[], Awaitable[bool]]) -> None:
        self._kube = kube
        self._interloper: Callable[[], Awaitable[bool]] | None = interloper

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        doc = await self._kube.get(*args, **kwargs)
        if self._interloper is not None:
            interloper, self._interloper = self._interloper, None
            assert await interloper()
        return doc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)


@run_async
async def test_a_write_on_a_stale_resource_version_loses_cleanly(sandbox: Sandbox, namespace: str) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        first = elector(kube, namespace, lease, "first")
        await first.acquire()
        assert await first.release()  # a free lease: anyone may take it at once

        winner = elector(kube, namespace, lease, "winner")
        loser = elector(RacingKube(kube, winner.try_acquire_or_renew), namespace, lease, "loser")
        assert await loser.try_acquire_or_renew() is False

        assert not loser.is_leader
        assert (await lease_spec(kube, namespace, lease))["holderIdentity"] == "winner"
        # The loser now sees the winner's fresh lease and waits for it to expire.
        assert await loser.try_acquire_or_renew() is False
        assert loser.holder == "winner"


@run_async
async def test_release_leaves_a_lease_held_by_someone_else_alone(sandbox: Sandbox, namespace: str) -> None:
    async with client(sandbox) as kube:
        lease = unique("lease")
        holder = elector(kube, namespace, lease, "holder")
        await holder.acquire()
        other = elector(kube, namespace, lease, "other")
        assert await other.release() is False

        assert (await lease_spec(kube, namespace, lease))["holderIdentity"] == "holder"


@pytest.mark.parametrize(
    "timings",
    [
        {"lease_duration": 10.0, "renew_deadline": 10.0, "retry_period": 2.0},
        {"lease_duration": 15.0, "renew_deadline": 2.0, "retry_period": 2.0},
        {"lease_duration": 0.5, "renew_deadline": 0.3, "retry_period": 0.1},
    ],
)
def test_timings_that_would_let_two_replicas_lead_are_refused(timings: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        LeaderElector(object(), "ns", "lease", "me", **timings)  # type: ignore[arg-type]
