"""The e2e suite: the same kubectl tests, against a real cluster named by STRONGROOM_E2E_KUBECONFIG.

Running them against kube-apiserver is how a difference between the sandbox
and a real cluster shows up. Without the variable the suite is skipped: CI
has no real cluster.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import Sandbox, kubectl_binary


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """Overrides the sandbox fixture: the real cluster plays its part."""
    kubeconfig = os.environ.get("STRONGROOM_E2E_KUBECONFIG")
    if not kubeconfig:
        pytest.skip("STRONGROOM_E2E_KUBECONFIG is not set: no real cluster to run the e2e suite against")
    server = subprocess.run(
        [kubectl_binary(), "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"],
        env={**os.environ, "KUBECONFIG": kubeconfig},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Sandbox(tmp_path_factory.mktemp("e2e"), str(Path(kubeconfig).resolve()), server)
