"""A cluster's internal registry for the image tests: a real docker-registry, images built here, ImageStreams.

``internal_registry`` runs Debian's ``docker-registry`` (Distribution 2.8) on a
free 127.0.0.1 port with filesystem storage in a temporary directory, playing
OpenShift's internal registry; the test that started it stops it (or kills
it on purpose). ``build_image`` writes a small OCI image layout (random
layers as tar.gz, a config, a manifest) and ``push`` sends it there with
``skopeo copy oci:DIR:TAG docker://...``, as a build would. ``imagestream``
makes the ImageStream OpenShift would hold for the pushed images, with the
registry's in-cluster name (not the loopback address skopeo connects to).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.integration.s3server import LoopbackServer
from tests.integration.serverproc import HOST, free_port, server_process

from strongroom.images import OPENSHIFT_INTERNAL_REGISTRY

REGISTRY_BINARY = "docker-registry"
SKOPEO = "skopeo"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class InternalRegistry:
    """A running registry: the address skopeo uses, and its storage on disk."""

    host: str
    storage: Path
    process: subprocess.Popen[bytes]

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (Distribution's filesystem layout)."""
        algorithm, hexdigest = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"

    def stop(self) -> None:
        """Kill it now (the registry disappears under whoever is using it)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def internal_registry(directory: Path) -> Iterator[InternalRegistry]:
    """A docker-registry on 127.0.0.1 with its storage under ``directory``, until the block ends."""
    port = free_port()
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"{HOST}:{port}", "secret": "test-internal-registry"},
    }
    config_path = directory / "registry.yml"
    config_path.write_text(yaml.safe_dump(config))
    # REGISTRY_* variables would override the file; AWS_CA_BUNDLE makes its (unused) S3 driver panic.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "AWS_CA_BUNDLE"}
    with server_process(
        REGISTRY_BINARY,
        [REGISTRY_BINARY, "serve", str(config_path)],
        directory / f"registry-{port}.log",
        f"http://{HOST}:{port}/v2/",
        env=env,
    ) as process:
        yield InternalRegistry(f"{HOST}:{port}", storage, process)


@dataclass
class DroppingProxy(LoopbackServer):
    """A loopback proxy to a registry that drops every blob download after ``cut_after`` bytes.

    To the client the registry goes away half-way through a layer. Each
    connection carries one request (``Connection: close`` is added), and a TLS
    handshake (skopeo tries HTTPS first) is refused at once, as a plain-HTTP
    registry refuses it.
    """

    upstream: str
    cut_after: int = 64 * 1024
    cuts: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(1)
        if first in (b"", b"\x16"):  # closed, or a TLS ClientHello
            return
        head = first + await reader.readuntil(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
        request_line = lines[0].decode("ascii", errors="replace")
        cut = request_line.startswith("GET ") and "/blobs/sha256:" in request_line
        host, port = self.upstream.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        try:
            upstream_writer.write(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n")
            await upstream_writer.drain()
            sent = 0
            while chunk := await upstream_reader.read(16 * 1024):
                if cut and sent + len(chunk) > self.cut_after:
                    writer.write(chunk[: self.cut_after - sent])
                    await writer.drain()
                    self.cuts += 1
                    return
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            upstream_writer.transport.abort()


@dataclass(frozen=True)
class BuiltImage:
    """An OCI image layout on disk and the digests of its parts."""

    layout: Path
    tag: str
    digest: str
    config: str
    layers: tuple[str, ...]
    size: int


def _put(blobs: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def _random_layer(size: int, name: str) -> tuple[bytes, str]:
    """A gzipped tar with one file of ``size`` random bytes, and the digest of the uncompressed tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    tar_bytes = raw.getvalue()
    # Random data does not compress: level 1 keeps building a 200 MB image quick.
    return gzip.compress(
        tar_bytes, compresslevel=1, mtime=0
    ), f"sha256:{hashlib.sha256(tar_bytes).hexdigest()}"


def build_image(
    directory: Path,
    layer_sizes: Sequence[int] = (64 * 1024, 16 * 1024),
    tag: str = "latest",
    architecture: str = "amd64",
) -> BuiltImage:
    """An OCI image layout in ``directory`` with one random layer per size (unique content every call)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for index, size in enumerate(layer_sizes):
        layer, diff_id = _random_layer(size, f"layer-{index}.bin")
        layers.append({"mediaType": OCI_LAYER, "digest": _put(blobs, layer), "size": len(layer)})
        diff_ids.append(diff_id)
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_digest = _put(blobs, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
    ).encode()
    digest = _put(blobs, manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    return BuiltImage(
        directory,
        tag,
        digest,
        config_digest,
        tuple(layer["digest"] for layer in layers),
        sum(layer["size"] for layer in layers) + len(config) + len(manifest),
    )


def build_index(
    directory: Path, architectures: Sequence[str] = ("amd64", "arm64"), tag: str = "latest"
) -> BuiltImage:
    """A multi-architecture image: an OCI image index over one small image per architecture.

    The result's ``layers`` are the digests of the per-architecture manifests (what the index lists).
    """
    images = [build_image(directory, (32 * 1024,), tag, architecture) for architecture in architectures]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.digest,
                    "size": (directory / "blobs" / "sha256" / image.digest.split(":", 1)[1]).stat().st_size,
                    "platform": {"architecture": architecture, "os": "linux"},
                }
                for image, architecture in zip(images, architectures, strict=True)
            ],
        }
    ).encode()
    digest = _put(directory / "blobs" / "sha256", index)
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_INDEX,
                "digest": digest,
                "size": len(index),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(top))
    return BuiltImage(
        directory,
        tag,
        digest,
        "",
        tuple(image.digest for image in images),
        sum(i.size for i in images) + len(index),
    )


def skopeo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run skopeo (no signature policy: test images are unsigned); fail with its output."""
    proc = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def push(image: BuiltImage, registry: str, repository: str, tag: str | None = None) -> str:
    """Push ``image`` to ``registry/repository:tag`` over plain HTTP, as a build would; its reference."""
    reference = f"{registry}/{repository}:{tag or image.tag}"
    skopeo(
        "copy", "--all", "--dest-tls-verify=false", f"oci:{image.layout}:{image.tag}", f"docker://{reference}"
    )
    return reference


def manifest_digest(reference: str) -> str:
    """The sha256 of the manifest a plain-HTTP registry serves for ``reference``."""
    raw = subprocess.run(
        [SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def imagestream(
    namespace: str,
    name: str,
    tags: Mapping[str, Sequence[str]],
    *,
    registry: str = OPENSHIFT_INTERNAL_REGISTRY,
    public_registry: str | None = "default-route-openshift-image-registry.apps.example.com",
    spec_tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ImageStream OpenShift holds after pushes: ``tags`` maps a tag to its digests, newest first.

    ``spec_tags`` adds spec tags whose source is a DockerImage pull spec.
    """
    repository = f"{registry}/{namespace}/{name}"
    status: dict[str, Any] = {
        "dockerImageRepository": repository,
        "tags": [
            {
                "tag": tag,
                "items": [
                    {
                        "created": "2024-05-01T10:00:00Z",
                        "dockerImageReference": f"{repository}@{digest}",
                        "image": digest,
                        "generation": generation,
                    }
                    for generation, digest in enumerate(digests, start=1)
                ],
            }
            for tag, digests in tags.items()
        ],
    }
    if public_registry:
        status["publicDockerImageRepository"] = f"{public_registry}/{namespace}/{name}"
    return {
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": {"name": name, "namespace": namespace, "uid": "3f1c2d7e-0000-4000-8000-000000000001"},
        "spec": {
            "lookupPolicy": {"local": False},
            "tags": [
                {
                    "name": tag,
                    "from": {"kind": "DockerImage", "name": pull_spec},
                    "referencePolicy": {"type": "Source"},
                }
                for tag, pull_spec in (spec_tags or {}).items()
            ],
        },
        "status": status,
    }
