"""Which proxy a store's HTTP client uses: decided from the environment when the store is built, as Go decides."""

from __future__ import annotations

import pytest

from strongroom.storage._obstore import StoreOptions, client_config

PROXY = "http://proxy.internal:3128"


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,.svc,minio.local")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://velerostore.blob.core.windows.net", PROXY),
        ("https://bucket.s3.eu-west-1.amazonaws.com", PROXY),
        # NO_PROXY: a CIDR, a domain suffix, a host name.
        ("https://10.12.0.4:9000", None),
        ("https://minio.openshift-storage.svc:443", None),
        ("https://minio.local:9000", None),
        # Plain HTTP would use HTTP_PROXY, which is not set.
        ("http://s3.example.com:9000", None),
    ],
)
def test_the_proxy_follows_https_proxy_and_no_proxy(
    proxied: None, endpoint: str, expected: str | None
) -> None:
    assert client_config(StoreOptions(), endpoint=endpoint).get("proxy_url") == expected


def test_without_a_proxy_in_the_environment_none_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert "proxy_url" not in client_config(
        StoreOptions(), endpoint="https://velerostore.blob.core.windows.net"
    )
