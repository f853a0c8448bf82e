"""Backing up an internal image into the location's registry vs. a plain `skopeo copy` between the same registries.

A ~200 MB image (four layers of random data; 32 MB with --quick) is pushed
to a loopback docker-registry playing the cluster's internal registry. The
backup location is a bucket on moto's S3 server. "Ours" is what a backup
does for one ImageStream: ``ImageBackup.backup`` into a ``LocationRegistry``
(docker-registry on that bucket) with a fresh prefix: the existence check,
``skopeo copy --all --preserve-digests``, and the digest verification. The
floor is a plain ``skopeo copy`` of the same image from the same internal
registry into a docker-registry on the same bucket, also with a fresh
prefix, which is the copy alone. Registries are started before the clock
starts (start-up is reported apart), then the two take turns going first.
A second backup of the same image into the same prefix (nothing to upload)
is measured against a second plain copy, which skips every blob too.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Options, Result, Row, Table, fmt_seconds

MB = 1_000_000
# Rounds in which the two sides take turns to go first (after an untimed warm-up copy).
ROUNDS = 4


def _registry(moto: Any, bucket: str, scratch: Path) -> Any:
    from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY

    from strongroom.images import LocationRegistry
    from strongroom.storage import AwsCredentials

    config = {"region": "us-east-1", "s3Url": moto.endpoint, "s3ForcePathStyle": "true"}
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return LocationRegistry(
        "aws", bucket, prefix, config, AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), scratch_dir=scratch
    )


def _empty(moto: Any, bucket: str) -> None:
    """Delete every object: moto keeps them in memory, and a growing heap slows whichever side runs later."""
    client = moto.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def _plain_copy(source: str, destination: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{source}",
            f"docker://{destination}",
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    return time.perf_counter() - started


async def _ours(registry: Any, source_host: str, stream: dict[str, Any], scratch: Path) -> tuple[float, str]:
    from strongroom.images import ImageBackup, ImageCopier, RegistryEndpoint

    async with ImageCopier(scratch_dir=scratch) as copier:
        backup = ImageBackup(
            copier, source=RegistryEndpoint.plain_http(source_host), destination=registry.endpoint
        )
        started = time.perf_counter()
        result = await backup.backup(stream)
        seconds = time.perf_counter() - started
    if result.errors:
        raise RuntimeError("; ".join(result.errors))
    return seconds, ", ".join(sorted({r.outcome.value for r in result.images}))


async def _round(
    moto: Any,
    bucket: str,
    internal_host: str,
    image: Any,
    stream: dict[str, Any],
    scratch: Path,
    ours_first: bool,
) -> dict[str, Any]:
    """One fresh prefix each side; then each side once more into its own prefix (nothing to upload)."""
    figures: dict[str, Any] = {}
    source = f"{internal_host}/bench/app@{image.digest}"
    started = time.perf_counter()
    async with (
        _registry(moto, bucket, scratch) as ours_registry,
        _registry(moto, bucket, scratch) as floor_registry,
    ):
        figures["startup"] = (time.perf_counter() - started) / 2
        floor_target = f"{floor_registry.host}/bench/app@{image.digest}"

        async def ours() -> None:
            figures["ours"], figures["ours_outcome"] = await _ours(
                ours_registry, internal_host, stream, scratch
            )

        async def floor() -> None:
            figures["floor"] = await asyncio.to_thread(_plain_copy, source, floor_target)

        for side in (ours, floor) if ours_first else (floor, ours):
            await side()
        figures["ours_again"], figures["again_outcome"] = await _ours(
            ours_registry, internal_host, stream, scratch
        )
        figures["floor_again"] = await asyncio.to_thread(_plain_copy, source, floor_target)
    return figures


def run(options: Options) -> Result:
    from tests.integration.registrykit import build_image, imagestream, internal_registry, push
    from tests.integration.s3server import moto_server

    layer_mb = 8 if options.quick else 50
    layers = 4
    rounds: list[dict[str, Any]] = []
    problems: list[str] = []
    size_mb = 0.0
    with tempfile.TemporaryDirectory(prefix="strongroom-bench-images-") as tmp:
        workdir = Path(tmp)
        image = build_image(workdir / "image", [layer_mb * MB] * layers)
        size_mb = image.size / MB
        stream = imagestream("bench", "app", {"latest": [image.digest]})
        with internal_registry(workdir / "internal") as internal, moto_server(workdir) as moto:
            push(image, internal.host, "bench/app", "latest")
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            moto.create_bucket(bucket)
            scratch = workdir / "scratch"

            async def warm_up() -> None:
                # moto's first large objects cost it more, whoever sends them.
                async with _registry(moto, bucket, scratch) as registry:
                    await asyncio.to_thread(
                        _plain_copy,
                        f"{internal.host}/bench/app@{image.digest}",
                        f"{registry.host}/bench/app@{image.digest}",
                    )

            asyncio.run(warm_up())
            _empty(moto, bucket)
            for number in range(ROUNDS):
                try:
                    rounds.append(
                        asyncio.run(
                            _round(
                                moto,
                                bucket,
                                internal.host,
                                image,
                                stream,
                                scratch,
                                ours_first=number % 2 == 0,
                            )
                        )
                    )
                except Exception as exc:  # a failed round is reported, the others still count
                    problems.append(f"round {number + 1}: {type(exc).__name__}: {exc}")
                _empty(moto, bucket)

    def rates(key: str) -> list[float]:
        return [size_mb / r[key] for r in rounds]

    rows = []
    if rounds:
        rows = [
            Row(
                f"back up a {size_mb:.0f} MB image into a fresh prefix (verified)",
                "MB/s",
                statistics.median(rates("ours")),
                statistics.median(rates("floor")),
                ratios=tuple(r["floor"] / r["ours"] for r in rounds),
            ),
            Row(
                "back it up again into the same prefix (nothing to upload)",
                "MB/s",
                statistics.median(rates("ours_again")),
                statistics.median(rates("floor_again")),
                note="ours: already present, no copy",
                ratios=tuple(r["floor_again"] / r["ours_again"] for r in rounds),
            ),
        ]
    table = Table(
        "Rounds (seconds)",
        [
            "round",
            "first",
            "ours",
            "skopeo copy",
            "ours again",
            "skopeo again",
            "registry start-up",
            "outcomes",
        ],
        [
            [
                str(number),
                "ours" if number % 2 == 1 else "floor",
                fmt_seconds(r["ours"]),
                fmt_seconds(r["floor"]),
                fmt_seconds(r["ours_again"]),
                fmt_seconds(r["floor_again"]),
                fmt_seconds(r["startup"]),
                f"{r['ours_outcome']}; then {r['again_outcome']}",
            ]
            for number, r in enumerate(rounds, start=1)
        ],
    )
    return Result(
        name="images",
        title="Internal images: ImageBackup into the location's registry vs. a plain skopeo copy",
        parameters={
            "image": f"{size_mb:.0f} MB, {layers} random layers",
            "registries": "docker-registry (Distribution 2.8) on 127.0.0.1: filesystem source, moto S3 destination",
            "rounds": str(ROUNDS),
        },
        rows=rows,
        tables=[table],
        problems=problems,
        method=(
            "The image is pushed once to a loopback docker-registry with filesystem storage (the internal "
            "registry). Each round starts two LocationRegistry processes on the same moto bucket, each with "
            "a fresh prefix (start-up is not timed, and reported apart), then times ImageBackup.backup of "
            "the image into one (existence check, skopeo copy --all --preserve-digests, digest "
            "verification) and a plain skopeo copy with the same flags into the other; the two take turns "
            "going first, after one untimed warm-up copy. Then each side copies the image again into its "
            "own prefix: ours finds the manifest present and copies nothing, skopeo checks and skips every "
            "blob. Rates are medians, the ratio ours ÷ floor is each round's own and its median."
        ),
    )
