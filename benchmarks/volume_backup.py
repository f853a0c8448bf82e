"""File-system backup of a pod volume through strongroom vs. `restic backup` run directly on the same files.

The dataset is mixed, as real volumes are: many small files and a few large
ones, all incompressible. "Ours" is the whole path an administrator uses: a
Backup resource handed to the server running in the sandbox, which creates a
PodVolumeBackup that the node agent of the pod's node copies with restic into
the namespace's repository, until the Backup is Completed. The floor is the
same restic binary run by hand on the same directory into an empty repository
on the same disk (init, then backup), with the same cache settings. Then 1%
of the data changes and both back up again (the floor with `--parent`), which
measures what an incremental backup costs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Options, Result, Row, Table
from strongroom.sandbox import runner
from strongroom.sandbox.runtime import volume_dir

NS = "openshift-adp"
MIB = 1024 * 1024


def _kubectl(kubeconfig: str, *args: str, input: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": kubeconfig},
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _strongroom(kubeconfig: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "strongroom", *args],
        capture_output=True,
        env={**os.environ, "KUBECONFIG": kubeconfig},
        check=True,
        timeout=300,
    )


def _dataset(directory: Path, total_mib: int) -> int:
    """Small files (1-16 KiB, 15% of the bytes) in nested directories, and large files for the rest."""
    directory.mkdir(parents=True, exist_ok=True)
    small_budget = total_mib * MIB * 15 // 100
    written = 0
    index = 0
    while written < small_budget:
        size = 1024 * (1 + index % 16)
        sub = directory / "small" / f"d{index % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index:06d}.bin").write_bytes(os.urandom(size))
        written += size
        index += 1
    large = 8
    per_file = (total_mib * MIB - written) // large
    for number in range(large):
        with (directory / f"large-{number}.bin").open("wb") as handle:
            left = per_file
            while left > 0:
                chunk = min(left, 8 * MIB)
                handle.write(os.urandom(chunk))
                left -= chunk
        written += per_file
    return written


def _change_one_percent(directory: Path, total_bytes: int) -> int:
    """Rewrite small files and append to a large one until 1% of the bytes are new."""
    target = total_bytes // 100
    changed = 0
    for path in sorted((directory / "small").rglob("*.bin"))[::7]:
        if changed >= target // 2:
            break
        size = path.stat().st_size
        path.write_bytes(os.urandom(size))
        changed += size
    with (directory / "large-0.bin").open("ab") as handle:
        handle.write(os.urandom(target - changed))
    return target


def _wait_phase(kubeconfig: str, name: str, timeout: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = json.loads(_kubectl(kubeconfig, "get", "backup", name, "-n", NS, "-o", "json"))
        if (obj.get("status") or {}).get("phase") in ("Completed", "PartiallyFailed", "Failed"):
            return obj
        time.sleep(0.1)
    raise TimeoutError(f"backup {name} did not finish")


def _backup_through_server(kubeconfig: str, name: str, namespace: str) -> float:
    body = {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"includedNamespaces": [namespace], "defaultVolumesToFsBackup": True},
    }
    started = time.perf_counter()
    _kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(body))
    done = _wait_phase(kubeconfig, name)
    elapsed = time.perf_counter() - started
    if done["status"]["phase"] != "Completed":
        raise RuntimeError(f"backup {name} ended {done['status']}")
    return elapsed


def _restic(repo: Path, cache: Path, *args: str, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["restic", "-r", str(repo), "--cache-dir", str(cache), "--quiet", *args],
        cwd=cwd,
        env={**os.environ, "RESTIC_PASSWORD": "benchmark-password"},
        capture_output=True,
        check=True,
        timeout=1800,
    )
    return time.perf_counter() - started


def _latest_snapshot(repo: Path, cache: Path) -> str:
    proc = subprocess.run(
        ["restic", "-r", str(repo), "--cache-dir", str(cache), "snapshots", "--json", "--latest", "1"],
        env={**os.environ, "RESTIC_PASSWORD": "benchmark-password"},
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(proc.stdout)[-1]["id"])


def _application(namespace: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.example.com/app:1",
                        "command": ["sh", "-c", "while true; do sleep 1; done"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
    ]


def run(options: Options) -> Result:
    total_mib = 128 if options.quick else 1024
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-bench-volumes-"))
    sandbox_dir = workdir / "sandbox"
    try:
        state = runner.start_detached(sandbox_dir, port=None, nodes=1, insecure=False)
        kubeconfig = state.kubeconfig
        storage = workdir / "storage"
        storage.mkdir()
        _strongroom(
            kubeconfig, "install", "--namespace", NS, "--use-node-agent", "--wait", "--timeout", "180"
        )
        location = {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": NS},
            "spec": {"provider": "local", "objectStorage": {"bucket": str(storage)}, "default": True},
        }
        _kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(location))
        namespace = "bench"
        # One by one: kubectl validates a List against OpenAPI v2, which the sandbox does not serve.
        for item in _application(namespace):
            _kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(item))
        _kubectl(kubeconfig, "wait", "--for=condition=Ready", "pod/app", "-n", namespace, "--timeout=120s")
        _kubectl(
            kubeconfig,
            "wait",
            "--for=jsonpath={.status.phase}=Available",
            "bsl/default",
            "-n",
            NS,
            "--timeout=60s",
        )
        volume = json.loads(_kubectl(kubeconfig, "get", "pvc", "data", "-n", namespace, "-o", "json"))
        pv = json.loads(_kubectl(kubeconfig, "get", "pv", volume["spec"]["volumeName"], "-o", "json"))
        data = volume_dir(sandbox_dir.resolve(), pv["spec"]["csi"]["volumeHandle"])
        total = _dataset(data, total_mib)
        # The floor reads the same files, from the page cache as warm as ours.
        floor_repo, floor_cache = workdir / "floor-repo", workdir / "floor-cache"
        floor_full = _restic(floor_repo, floor_cache, "init") + _restic(
            floor_repo, floor_cache, "backup", "--host", "bench", ".", cwd=data
        )
        ours_full = _backup_through_server(kubeconfig, "full", namespace)
        changed = _change_one_percent(data, total)
        parent = _latest_snapshot(floor_repo, floor_cache)
        floor_incremental = _restic(
            floor_repo, floor_cache, "backup", "--host", "bench", "--parent", parent, ".", cwd=data
        )
        ours_incremental = _backup_through_server(kubeconfig, "incremental", namespace)
        pvbs = json.loads(_kubectl(kubeconfig, "get", "podvolumebackups", "-n", NS, "-o", "json"))["items"]
        added = {
            item["metadata"]["labels"]["velero.io/backup-name"]: int(
                item["status"].get("incrementalBytes") or 0
            )
            for item in pvbs
        }
    finally:
        runner.stop(sandbox_dir)
        shutil.rmtree(workdir, ignore_errors=True)
    megabytes = total / MIB
    rows = [
        Row(
            f"file-system backup of {megabytes:,.0f} MiB (new repository)",
            "MiB/s",
            megabytes / ours_full,
            megabytes / floor_full,
            "floor: restic init + restic backup on the same directory",
        ),
        Row(
            f"incremental backup, {changed / MIB:,.1f} MiB (1%) changed",
            "backups/s",
            1 / ours_incremental,
            1 / floor_incremental,
            "floor: restic backup --parent",
        ),
    ]
    table = Table(
        "Seconds and bytes",
        [
            "Run",
            "strongroom (Backup resource to Completed)",
            "restic directly",
            "New data uploaded by strongroom",
        ],
        [
            ["full", f"{ours_full:.2f}", f"{floor_full:.2f}", f"{added.get('full', 0) / MIB:,.1f} MiB"],
            [
                "incremental",
                f"{ours_incremental:.2f}",
                f"{floor_incremental:.2f}",
                f"{added.get('incremental', 0) / MIB:,.1f} MiB",
            ],
        ],
    )
    overhead = ours_full / floor_full - 1
    problems = (
        [f"full backup overhead {overhead:.0%} over restic directly, above the 10% target"]
        if overhead > 0.10
        else []
    )
    return Result(
        name="volume_backup",
        title="File-system backup: a Backup through the server and node agent vs. restic directly",
        parameters={
            "dataset": f"{megabytes:,.0f} MiB: small files (1-16 KiB, 15% of the bytes) and 8 large files, random bytes",
            "location": "local directory",
        },
        rows=rows,
        tables=[table],
        problems=problems,
        method=(
            "Ours is measured from `kubectl apply` of the Backup until its phase is Completed, so it includes "
            "the server's object backup, repository checks (`restic unlock`, the parent snapshot lookup), the "
            "node agent's claim and status updates and the polling on both sides. The floor is restic alone "
            "on the same directory. A ratio below 1 means slower than restic by hand; the fixed costs weigh "
            "more on the incremental run, which moves little data."
        ),
    )
