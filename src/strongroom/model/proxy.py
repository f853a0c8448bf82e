"""The cluster-wide HTTP proxy: which requests go through it, and how to show it without its password.

OpenShift's ``Proxy`` (``config.openshift.io/v1``, named ``cluster``) holds the
proxy every component must use; its ``status`` has the effective values,
``noProxy`` included the cluster's own networks as CIDRs. The seed asks for
``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` to be exported wherever the
backup runs. ``NO_PROXY`` is matched as Go programs (etcd, restic, kubectl,
Velero) match it: ``*``; an IP address or a CIDR for an address; a domain for
itself and its subdomains (``.domain`` for its subdomains only); ``host:port``
for that port only. Python's own ``urllib`` ignores CIDRs, which on OpenShift
would send in-cluster traffic (the API at 172.30.0.1) to the proxy.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ProxySettings", "environment_proxy", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with any user and password replaced, so a proxy can be named in logs and bundles."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True)
class ProxySettings:
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProxySettings:
        """Upper-case names first, then lower-case, as Go's ``httpproxy.FromEnvironment``."""

        def get(name: str) -> str:
            return env.get(name) or env.get(name.lower()) or ""

        return cls(get("HTTP_PROXY"), get("HTTPS_PROXY"), get("NO_PROXY"))

    @classmethod
    def from_openshift(cls, proxy: Mapping[str, Any]) -> ProxySettings:
        """The Proxy's effective values (``status``), else what was asked for (``spec``)."""
        status = proxy.get("status") or {}
        spec = proxy.get("spec") or {}

        def get(key: str) -> str:
            return str(status.get(key) or spec.get(key) or "")

        return cls(get("httpProxy"), get("httpsProxy"), get("noProxy"))

    @property
    def enabled(self) -> bool:
        return bool(self.http_proxy or self.https_proxy)

    def env(self) -> list[dict[str, str]]:
        """Container environment for these settings (only the names that have a value)."""
        pairs = (
            ("HTTP_PROXY", self.http_proxy),
            ("HTTPS_PROXY", self.https_proxy),
            ("NO_PROXY", self.no_proxy),
        )
        return [{"name": name, "value": value} for name, value in pairs if value]

    def describe(self) -> str:
        """For people: the proxies without their passwords, and the exemptions."""
        parts = []
        if self.http_proxy:
            parts.append(f"httpProxy {redact_url(self.http_proxy)}")
        if self.https_proxy:
            parts.append(f"httpsProxy {redact_url(self.https_proxy)}")
        if self.no_proxy:
            parts.append(f"noProxy {self.no_proxy}")
        return ", ".join(parts) or "no proxy"

    def bypassed(self, host: str, port: int | None = None) -> bool:
        """Whether ``NO_PROXY`` exempts ``host`` (and ``port``, when an entry names one); loopback always is."""
        host = host.strip("[]").rstrip(".").lower()
        address = _address(host)
        if host == "localhost" or (address is not None and address.is_loopback):
            return True
        for raw in self.no_proxy.split(","):
            entry = raw.strip().lower()
            if entry == "*":
                return True
            if not entry:
                continue
            network = _network(entry.strip("[]"))
            if network is None:
                entry, entry_port = _split_port(entry)
                if entry_port is not None and port is not None and entry_port != port:
                    continue
                network = _network(entry.strip("[]"))
            if network is not None:
                if address is not None and address in network:
                    return True
                continue
            if address is not None:
                continue  # a domain never matches an address
            entry = entry.removeprefix("*")
            if entry.startswith("."):
                if host.endswith(entry):
                    return True
            elif host == entry or host.endswith("." + entry):
                return True
        return False

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through, or None when it goes direct."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme or "https"
        proxy = self.https_proxy if scheme == "https" else self.http_proxy
        if not proxy or not parts.hostname:
            return None
        if self.bypassed(parts.hostname, parts.port or _default_port(scheme)):
            return None
        return proxy


def environment_proxy(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` of this process name for ``url``, unless ``NO_PROXY``
    exempts it (CIDRs included, as for Go clients: OpenShift exempts its service network)."""
    return ProxySettings.from_env(os.environ).proxy_for(url)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` or ``[v6]:port`` into host and port; anything else is all host."""
    if entry.startswith("["):
        host, sep, port = entry.partition("]:")
        return (host + "]", int(port)) if sep and port.isdigit() else (entry, None)
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
