"""The server's HTTP endpoints for Kubernetes and Prometheus: ``/metrics``, ``/healthz``, ``/readyz``.

The kubelet decides from ``/healthz`` whether to restart the server and from
``/readyz`` whether it is up; Prometheus scrapes ``/metrics``. They share one
small aiohttp application on Velero's metrics address (``--metrics-address
:8085``), served from the controllers' own event loop: a loop blocked by a
runaway handler cannot answer, the probe times out, and the kubelet restarts
the pod, which is what should happen.

A controller that finds the server beyond repair (its lease lost to another
replica, its watch streams dead) calls ``report_fatal``; liveness then fails
with that reason, so the restart is explained in ``kubectl describe pod``.
"""

from __future__ import annotations

import logging
import socket
from typing import Final

from aiohttp import web

from strongroom.controller.metrics import ServerMetrics
from strongroom.errors import UsageError

__all__ = ["DEFAULT_ADDRESS", "HealthServer", "parse_address"]

_log = logging.getLogger(__name__)

# Velero's default metrics address: every interface, port 8085.
DEFAULT_ADDRESS: Final = ":8085"


def parse_address(address: str) -> tuple[str | None, int]:
    """``host:port`` as Go's net.Listen reads it: ``:8085`` (all interfaces), ``127.0.0.1:0``, ``[::1]:80``.

    The host is None for all interfaces; port 0 lets the system choose.
    """
    host, sep, port_text = address.strip().rpartition(":")
    hint = "give host:port, e.g. :8085 (all interfaces) or 127.0.0.1:8085"
    if not sep or not port_text.isdigit():
        raise UsageError(f"invalid listen address {address!r}: no port", hint=hint)
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"invalid listen address {address!r}: port {port} is out of range", hint=hint)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(
            f"invalid listen address {address!r}: put an IPv6 host in brackets", hint="e.g. [::1]:8085"
        )
    return (host or None), port


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one address; ``start`` binds, ``stop`` closes.

    Not ready until ``set_ready(True)``; healthy until ``report_fatal``.
    ``set_leader`` makes ``/readyz`` say whether this replica leads or
    stands by. ``app`` may take more routes before ``start``.
    """

    def __init__(self, metrics: ServerMetrics, address: str = DEFAULT_ADDRESS) -> None:
        self._host, self._requested_port = parse_address(address)
        self._metrics = metrics
        self._ready = False
        self._leader: bool | None = None
        self._fatal: str | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._serve_metrics)
        self.app.router.add_get("/healthz", self._serve_health)
        self.app.router.add_get("/readyz", self._serve_ready)

    # -- state the controllers report -----------------------------------------

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    def set_leader(self, leader: bool) -> None:
        self._leader = leader

    def report_fatal(self, reason: str) -> None:
        """Fail liveness from now on: the server cannot recover and must be restarted."""
        if self._fatal is None:
            _log.error("the server reports itself unhealthy: %s", reason, extra={"reason": reason})
        self._fatal = reason

    @property
    def fatal(self) -> str | None:
        return self._fatal

    @property
    def ready(self) -> bool:
        return self._ready

    # -- lifecycle -------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port bound (the system's choice when the address asked for 0)."""
        if self._port is None:
            raise RuntimeError("the health server is not started")
        return self._port

    @property
    def url(self) -> str:
        """A base URL that reaches the server from this host."""
        host = self._host or "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host=self._host, port=self._requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(
                f"cannot listen on {self._host or ''}:{self._requested_port}: {exc.strerror or exc}",
                hint="choose another --metrics-address or stop what uses that port",
            ) from exc
        self._runner = runner
        self._port = self._bound_port(runner) or self._requested_port
        _log.info(
            "serving /metrics, /healthz and /readyz on %s:%d",
            self._host or "",
            self._port,
            extra={"address": f"{self._host or ''}:{self._port}"},
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def _bound_port(runner: web.AppRunner) -> int | None:
        # All interfaces with port 0 binds IPv4 and IPv6 apart; ``url`` reaches the IPv4 one.
        for family in (socket.AF_INET, socket.AF_INET6):
            for site in runner.sites:
                for sock in getattr(getattr(site, "_server", None), "sockets", None) or ():
                    if sock.family == family:
                        port: int = sock.getsockname()[1]
                        return port
        return None

    # -- handlers --------------------------------------------------------------

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        body, content_type = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _serve_health(self, request: web.Request) -> web.Response:
        if self._fatal is not None:
            return web.Response(status=500, text=f"unhealthy: {self._fatal}\n")
        return web.Response(text="ok\n")

    async def _serve_ready(self, request: web.Request) -> web.Response:
        if self._fatal is not None:
            return web.Response(status=503, text=f"not ready: {self._fatal}\n")
        if not self._ready:
            return web.Response(status=503, text="not ready: starting\n")
        if self._leader is None:
            return web.Response(text="ok\n")
        role = "leader" if self._leader else "standby (another replica holds the lease)"
        return web.Response(text=f"ok: {role}\n")
