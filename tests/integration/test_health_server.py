"""The server's /metrics, /healthz and /readyz over real HTTP, as the kubelet and Prometheus see them."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.runasync import run_async

from strongroom.controller.http import HealthServer, parse_address
from strongroom.controller.metrics import ServerMetrics
from strongroom.errors import UsageError

pytestmark = pytest.mark.integration


async def fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


@run_async
async def test_metrics_endpoint_serves_velero_metrics_in_prometheus_text_format() -> None:
    metrics = ServerMetrics()
    metrics.register_schedule("daily")
    metrics.backup_attempted("daily")
    metrics.backup_finished("daily", "Completed", duration_s=30, items=5)
    metrics.location_checked("default", True)
    async with HealthServer(metrics, "127.0.0.1:0") as server:
        status, content_type, body = await fetch(f"{server.url}/metrics")

    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(body)}
    success = {s.labels["schedule"]: s.value for s in families["velero_backup_success"].samples}
    assert success["daily"] == 1
    locations = families["velero_backup_location_status_gauge"].samples
    assert [(s.labels, s.value) for s in locations] == [({"backup_location_name": "default"}, 1.0)]


@run_async
async def test_metrics_reflect_events_after_the_server_started() -> None:
    metrics = ServerMetrics()
    async with HealthServer(metrics, "127.0.0.1:0") as server:
        _, _, before = await fetch(f"{server.url}/metrics")
        metrics.restore_attempted("")
        _, _, after = await fetch(f"{server.url}/metrics")

    assert 'velero_restore_attempt_total{schedule=""} 0.0' in before
    assert 'velero_restore_attempt_total{schedule=""} 1.0' in after


@run_async
async def test_liveness_is_ok_until_a_controller_reports_a_fatal_state() -> None:
    async with HealthServer(ServerMetrics(), "127.0.0.1:0") as server:
        healthy = await fetch(f"{server.url}/healthz")
        server.report_fatal("the leader lease was lost")
        unhealthy = await fetch(f"{server.url}/healthz")

    assert healthy[0] == 200
    assert unhealthy[0] == 500
    assert "the leader lease was lost" in unhealthy[2]


@run_async
async def test_readiness_waits_for_set_ready_and_tells_leader_from_standby() -> None:
    async with HealthServer(ServerMetrics(), "127.0.0.1:0") as server:
        starting = await fetch(f"{server.url}/readyz")
        server.set_ready(True)
        server.set_leader(False)
        standby = await fetch(f"{server.url}/readyz")
        server.set_leader(True)
        leader = await fetch(f"{server.url}/readyz")

    assert starting[0] == 503
    assert standby[0] == 200
    assert "standby" in standby[2]
    assert leader[0] == 200
    assert "leader" in leader[2]
    assert "standby" not in leader[2]


@run_async
async def test_port_zero_binds_a_free_port_that_stop_releases() -> None:
    server = HealthServer(ServerMetrics(), "127.0.0.1:0")
    await server.start()
    port = server.port
    assert port > 0
    await server.stop()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free again


@run_async
async def test_a_port_in_use_is_a_usage_error_naming_the_address() -> None:
    async with HealthServer(ServerMetrics(), "127.0.0.1:0") as first:
        second = HealthServer(ServerMetrics(), f"127.0.0.1:{first.port}")
        with pytest.raises(UsageError, match=str(first.port)):
            await second.start()


@run_async
async def test_an_empty_host_listens_on_all_interfaces() -> None:
    async with HealthServer(ServerMetrics(), ":0") as server:
        status, _, _ = await fetch(f"http://127.0.0.1:{server.port}/healthz")
    assert status == 200


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":8085", (None, 8085)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:9090", ("0.0.0.0", 9090)),
        ("[::1]:8085", ("::1", 8085)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_addresses_parse_like_velero_metrics_address(address: str, expected: tuple[str | None, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["8085", "host:", ":http", ":70000", "::1:8085", ""])
def test_malformed_addresses_are_usage_errors(address: str) -> None:
    with pytest.raises(UsageError):
        parse_address(address)
