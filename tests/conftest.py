"""Shared fixtures: a real sandbox cluster (etcd + API server) per test session, and kubectl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strongroom.sandbox import runner

# The e2e suite needs a real cluster; it is collected only when one is named.
collect_ignore = [] if os.environ.get("STRONGROOM_E2E_KUBECONFIG") else ["e2e"]


@dataclass
class Sandbox:
    """A cluster the tests drive: the sandbox, or a real cluster in the e2e suite."""

    dir: Path
    kubeconfig: str
    server: str

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        proc = subprocess.run(
            [kubectl_binary(), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


def kubectl_binary() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise AssertionError("kubectl is not installed: run ./dev test, which installs it")
    return path


@pytest.fixture(scope="session", autouse=True)
def kubectl_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """kubectl caches discovery per host:port for hours; a port reused by a later sandbox must not see it."""
    previous = os.environ.get("KUBECACHEDIR")
    os.environ["KUBECACHEDIR"] = str(tmp_path_factory.mktemp("kubectl-cache"))
    yield
    if previous is None:
        os.environ.pop("KUBECACHEDIR", None)
    else:
        os.environ["KUBECACHEDIR"] = previous


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("sandbox")
    state = runner.start_detached(directory, port=None, nodes=2, insecure=False)
    try:
        yield Sandbox(directory, state.kubeconfig, state.server)
    finally:
        # A sandbox stops within a second or two. Now and then one never does: cancelled tasks
        # blocked in an etcd watch (the kubelet's, the controllers') do not finish, and
        # runner.stop would wait its default 20 s before SIGKILL. Five seconds is plenty otherwise.
        runner.stop(directory, timeout=5)
