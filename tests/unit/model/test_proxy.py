"""NO_PROXY matched as Go programs match it, and proxies shown without their passwords."""

from __future__ import annotations

import pytest

from strongroom.model.proxy import ProxySettings, redact_url

# OpenShift's effective noProxy: its own networks as CIDRs, service domains, the API's internal name.
OPENSHIFT = ProxySettings(
    "http://user:s3cret@proxy.example.com:3128",
    "http://user:s3cret@proxy.example.com:3128",
    ".cluster.local,.svc,10.0.0.0/16,10.128.0.0/14,127.0.0.1,169.254.169.254,172.30.0.0/16,"
    "api-int.demo.example.com,localhost,minio.example.com:9000,[fd00::1]:443,fd01::/48",
)


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("https://172.30.0.1:443", True),  # the in-cluster API: only the CIDR exempts it
        ("https://10.0.3.7:2379", True),  # etcd on the machine network
        ("http://minio.openshift-adp.svc:9000", True),
        ("http://minio.openshift-adp.svc.cluster.local:9000", True),
        ("https://api-int.demo.example.com:6443", True),
        ("https://x.api-int.demo.example.com:6443", True),  # a domain covers its subdomains
        ("http://minio.example.com:9000", True),
        ("http://minio.example.com:9001", False),  # host:port exempts that port only
        ("https://[fd00::1]:443", True),
        ("https://[fd00::1]:8443", False),
        ("https://[fd01::5]", True),
        ("https://s3.us-east-1.amazonaws.com", False),
        ("https://192.168.1.10", False),
        ("https://svc", False),  # ".svc" needs a subdomain
        ("http://127.0.0.5:8080", True),  # loopback always goes direct
    ],
)
def test_openshift_no_proxy(url: str, direct: bool) -> None:
    proxy = OPENSHIFT.proxy_for(url)
    assert (proxy is None) is direct, (url, proxy)


def test_wildcard_plain_domain_and_no_proxy_at_all() -> None:
    assert ProxySettings("", "http://p:1", "*").proxy_for("https://anything") is None
    assert ProxySettings("", "http://p:1", "example.com").proxy_for("https://example.com") is None
    assert ProxySettings("", "http://p:1", "*.example.com").proxy_for("https://a.example.com") is None
    assert ProxySettings("", "http://p:1", "").proxy_for("https://example.com") == "http://p:1"
    assert ProxySettings("http://p:1", "", "").proxy_for("https://example.com") is None  # no HTTPS proxy set
    assert not ProxySettings().enabled and ProxySettings().env() == []


def test_from_env_and_openshift() -> None:
    env = ProxySettings.from_env(
        {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:1", "no_proxy": "a"}
    )
    assert env == ProxySettings("", "http://up:1", "a")
    proxy = {
        "spec": {"httpProxy": "http://spec:1", "noProxy": "example.com"},
        "status": {"httpProxy": "http://status:1", "noProxy": ".cluster.local,example.com"},
    }
    assert ProxySettings.from_openshift(proxy) == ProxySettings(
        "http://status:1", "", ".cluster.local,example.com"
    )
    assert ProxySettings.from_openshift({}).enabled is False
    assert ProxySettings.from_openshift(proxy).env() == [
        {"name": "HTTP_PROXY", "value": "http://status:1"},
        {"name": "NO_PROXY", "value": ".cluster.local,example.com"},
    ]


def test_passwords_never_shown() -> None:
    assert redact_url("http://user:s3cret@proxy.example.com:3128") == "http://***@proxy.example.com:3128"
    assert redact_url("http://proxy.example.com:3128") == "http://proxy.example.com:3128"
    assert "s3cret" not in OPENSHIFT.describe()
    assert "proxy.example.com:3128" in OPENSHIFT.describe()
