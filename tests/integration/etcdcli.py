"""Running `strongroom etcd ...` in the test process, and the flags that point it at a test cluster."""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.etcdkit import EtcdCluster

from strongroom.cli.main import run_cli


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def strongroom(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def ok(*args: str) -> Result:
    result = strongroom(*args)
    assert result.code == 0, (
        f"strongroom {' '.join(args)} exited {result.code}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def flags(cluster: EtcdCluster, endpoints: list[str] | None = None) -> list[str]:
    """--endpoints and, for a TLS cluster, --cacert/--cert/--key."""
    out = ["--endpoints", ",".join(endpoints or cluster.endpoints)]
    if cluster.tls is not None:
        out += [
            "--cacert",
            str(cluster.tls.ca),
            "--cert",
            str(cluster.tls.client_cert),
            "--key",
            str(cluster.tls.client_key),
        ]
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under root with its sha256: to prove that a refused command changed nothing."""
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}
