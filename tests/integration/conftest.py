"""Fixtures for the sandbox integration tests: a client for the session's sandbox, a namespace per test."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tests.conftest import Sandbox
from tests.integration.sandboxapi import Kube, eventually, unique


@pytest.fixture(scope="session")
def kube(sandbox: Sandbox) -> Iterator[Kube]:
    """The session's sandbox through its kubeconfig: the official client, and its token and CA for raw HTTP."""
    kubeconfig = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    ca_file = sandbox.dir / "kube-ca.crt"
    ca_file.write_bytes(base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]))
    api = config.new_client_from_config(sandbox.kubeconfig)
    try:
        yield Kube(sandbox.server, token, str(ca_file), api, sandbox.dir.resolve())
    finally:
        api.close()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = unique("t")
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Controllers fill a new namespace asynchronously; let them finish so that
    # watches and lists in the test see only the test's own objects change.
    eventually(lambda: kube.core.read_namespaced_config_map("kube-root-ca.crt", name))
    eventually(lambda: kube.core.read_namespaced_service_account("default", name))
    yield name
    try:
        kube.core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
