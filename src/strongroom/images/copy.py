"""Copying images between registries with ``skopeo``, each copy verified by digest.

skopeo (Debian's 1.9, containers/image 5.23) is the tool OpenShift's own image
mirroring is built on; OADP's plugin links the same library. strongroom runs
the binary:

* ``skopeo copy --all --preserve-digests`` copies an image, or every image of
  a manifest list, without converting a manifest: the digest a pod pulls is
  the digest that is restored, or the copy fails. skopeo checks every blob it
  reads against its digest (a corrupt or truncated layer in the source fails
  the copy) and skips blobs the destination already holds (a HEAD request, or
  a cross-repository mount), so a registry whose storage is shared by all
  backups stores each layer once.
* After a copy, the destination's manifest is fetched again
  (``skopeo inspect --raw``) and hashed: it must be the digest skopeo pushed
  (``--digestfile``) and the digest the source reference named. Anything else
  is an error on that image, never a silent success.
* ``exists`` answers whether a registry already holds a manifest by digest
  (and serves exactly those bytes), so a backup can skip an image that an
  earlier backup copied.

Each registry is reached as its ``RegistryEndpoint`` says: TLS verification
(a plain-http loopback registry needs it off), a directory of CA
certificates, and credentials. Credentials go through an ``--authfile`` that
only this user can read (a 0700 directory, the file 0600) and that exists
only while the skopeo run that needs it does; never through argv, where every
user of the machine can read them. Without credentials a registry is reached anonymously (``--no-creds``),
never with whatever the machine's auth files hold. Signatures are verified by
no policy (``--insecure-policy``): these are the cluster's own images, copied
out and back by digest, as OADP copies them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from strongroom.errors import StrongroomError, UsageError
from strongroom.images._process import find_binary, stop_process, tail
from strongroom.images.imagestreams import ImageReference, is_digest

__all__ = ["ImageCopier", "ImageCopyError", "RegistryCredentials", "RegistryEndpoint", "manifest_digest"]

_log = logging.getLogger(__name__)

_TERMINATE_GRACE: Final = 5.0
# What registries answer for a manifest or repository they do not have.
_MISSING: Final = ("manifest unknown", "name unknown", "not found", "404")
# Variables that would make skopeo read credentials or configuration we did not give it.
_IGNORED_ENVIRONMENT: Final = ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "CONTAINERS_REGISTRIES_CONF")


@dataclass(frozen=True, repr=False)
class RegistryCredentials:
    """A user name and password (or token) for one registry; printing them never shows the password.

    OpenShift's internal registry takes any user name with a service account's token as password.
    """

    username: str
    password: str

    @classmethod
    def token(cls, token: str) -> RegistryCredentials:
        """A bearer token as OpenShift's registry accepts it (the user name is ignored)."""
        return cls("serviceaccount", token)

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__

    @property
    def auth(self) -> str:
        """The ``auth`` value of an auth file: base64 of ``user:password``."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    @property
    def secret_values(self) -> tuple[str, ...]:
        return (self.password, self.auth)


@dataclass(frozen=True)
class RegistryEndpoint:
    """How to reach one registry: ``host`` (``name[:port]``), TLS and credentials."""

    host: str
    tls_verify: bool = True
    # A directory of *.crt (CAs) and *.cert/*.key (client certificate) files, as containers/image reads it.
    cert_dir: Path | None = None
    credentials: RegistryCredentials | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        host = self.host.strip().lower()
        if not host or "/" in host:
            raise UsageError(f"invalid registry host {self.host!r}: expected name[:port]")
        object.__setattr__(self, "host", host)

    @classmethod
    def plain_http(cls, host: str) -> RegistryEndpoint:
        """A registry served over plain HTTP (the loopback registries strongroom starts)."""
        return cls(host, tls_verify=False)

    @property
    def secret_values(self) -> tuple[str, ...]:
        return self.credentials.secret_values if self.credentials else ()


class ImageCopyError(StrongroomError):
    """A copy, verification or lookup of one image failed; the message names the image and registries."""

    def __init__(
        self, message: str, *, image: str, registries: Sequence[str] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.image = image
        self.registries = tuple(registries)


def manifest_digest(manifest: bytes, algorithm: str = "sha256") -> str:
    """The digest of a manifest's bytes, as registries compute it."""
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise UsageError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, manifest).hexdigest()}"


@dataclass
class _Run:
    code: int
    stdout: bytes
    stderr: bytes
    # What skopeo wrote to --digestfile, when it was asked to.
    digest: str = ""


def _reference(value: str | ImageReference) -> ImageReference:
    return value if isinstance(value, ImageReference) else ImageReference.parse(value)


def _hint(detail: str) -> str | None:
    lowered = detail.lower()
    # Hints only: no decision is taken from skopeo's wording.
    if "digest did not match" in lowered or "does not match" in lowered:
        return "a layer or manifest of the image is corrupt in the source registry's storage"
    if "blob unknown" in lowered:
        return "a layer of the image is missing from the source registry's storage"
    if "connection refused" in lowered or "no such host" in lowered or "i/o timeout" in lowered:
        return "the registry is not reachable at that address"
    if "unauthorized" in lowered or "authentication required" in lowered or "denied" in lowered:
        return "the registry refused the credentials (for OpenShift's registry: a token allowed to pull and push)"
    if "http response to https client" in lowered:
        return "the registry serves plain HTTP: reach it with TLS verification off"
    return None


class ImageCopier:
    """skopeo, with the settings of every registry it talks to; use it as ``async with`` (or ``close``).

    Endpoints are looked up by the host of each reference; a host that was not
    registered is reached with TLS verified and no credentials.
    """

    def __init__(
        self,
        *,
        endpoints: Iterable[RegistryEndpoint] = (),
        scratch_dir: Path | None = None,
        binary: str | None = None,
        retry_times: int = 3,
        timeout: float = 3600.0,
        remove_signatures: bool = False,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self._binary = find_binary("skopeo", binary, package="skopeo", purpose="copy container images")
        self._retry_times = retry_times
        self._timeout = timeout
        self._remove_signatures = remove_signatures
        base = dict(os.environ if environment is None else environment)
        self._environment = {k: v for k, v in base.items() if k not in _IGNORED_ENVIRONMENT}
        self._parent = scratch_dir
        self._scratch: Path | None = None
        self._endpoints: dict[str, RegistryEndpoint] = {}
        self._names = itertools.count()
        for endpoint in endpoints:
            self.register(endpoint)

    async def __aenter__(self) -> ImageCopier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the scratch directory (skopeo's temporary files)."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def register(self, endpoint: RegistryEndpoint) -> None:
        """Reach ``endpoint.host`` with these settings from now on."""
        self._endpoints[endpoint.host] = endpoint

    def endpoint(self, host: str) -> RegistryEndpoint:
        return self._endpoints.get(host.lower()) or RegistryEndpoint(host)

    @property
    def _secrets(self) -> tuple[str, ...]:
        return tuple(secret for endpoint in self._endpoints.values() for secret in endpoint.secret_values)

    def _directory(self) -> Path:
        if self._scratch is None or not self._scratch.is_dir():
            if self._parent is not None:
                self._parent.mkdir(parents=True, exist_ok=True)
            # mkdtemp creates it 0700: the auth files inside are this user's only.
            self._scratch = Path(tempfile.mkdtemp(prefix="strongroom-skopeo-", dir=self._parent))
            (self._scratch / "tmp").mkdir(mode=0o700)
        return self._scratch

    def _authfile(self, endpoint: RegistryEndpoint, written: list[Path]) -> Path:
        """The endpoint's credentials as an auth file (0600), for one skopeo run: the caller removes it."""
        assert endpoint.credentials is not None
        path = self._directory() / f"auth-{next(self._names)}.json"
        content = json.dumps({"auths": {endpoint.host: {"auth": endpoint.credentials.auth}}})
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        written.append(path)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        return path

    def _registry_args(self, endpoint: RegistryEndpoint, written: list[Path], side: str = "") -> list[str]:
        prefix = f"--{side}-" if side else "--"
        args = [f"{prefix}tls-verify={'true' if endpoint.tls_verify else 'false'}"]
        if endpoint.cert_dir is not None:
            args += [f"{prefix}cert-dir", str(endpoint.cert_dir)]
        if endpoint.credentials is not None:
            args += [f"{prefix}authfile", str(self._authfile(endpoint, written))]
        else:
            args.append(f"{prefix}no-creds")
        return args

    async def _run(
        self,
        argv: Sequence[str],
        *,
        image: str,
        registries: Sequence[str],
        what: str,
        written: list[Path],
        digest_file: Path | None = None,
    ) -> _Run:
        """Run skopeo, read its ``--digestfile`` if any; the auth files in ``written`` and the digest
        file are removed afterwards, whatever happened."""
        try:
            run = await self._run_process(argv, image=image, registries=registries, what=what)
            if digest_file is not None:
                with contextlib.suppress(OSError):
                    run.digest = digest_file.read_text(encoding="ascii").strip()
            return run
        finally:
            for path in (*written, *([digest_file] if digest_file is not None else [])):
                with contextlib.suppress(OSError):
                    path.unlink()

    async def _run_process(
        self, argv: Sequence[str], *, image: str, registries: Sequence[str], what: str
    ) -> _Run:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise StrongroomError(
                f"the skopeo binary {self._binary!r} was not found",
                hint="install it (Debian: apt-get install skopeo) or put it on PATH",
            ) from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self._timeout)
        except TimeoutError:
            await stop_process(process, _TERMINATE_GRACE)
            raise ImageCopyError(
                f"{what} of image {image} did not finish within {self._timeout:.0f}s",
                image=image,
                registries=registries,
            ) from None
        except asyncio.CancelledError:
            await stop_process(process, _TERMINATE_GRACE)
            raise
        return _Run(process.returncode or 0, stdout, stderr)

    def _failure(self, what: str, image: str, registries: Sequence[str], run: _Run) -> ImageCopyError:
        detail = tail(run.stderr.decode("utf-8", errors="replace"), self._secrets) or f"exit code {run.code}"
        return ImageCopyError(
            f"{what} failed: {detail}", image=image, registries=registries, hint=_hint(detail)
        )

    async def _raw_manifest(self, reference: ImageReference) -> tuple[bytes | None, _Run]:
        """The manifest's bytes; None (with the run) when the registry says it has no such manifest."""
        written: list[Path] = []
        argv = [
            self._binary,
            "inspect",
            "--raw",
            "--retry-times",
            str(self._retry_times),
            *self._registry_args(self.endpoint(reference.registry), written),
            f"docker://{reference}",
        ]
        run = await self._run(
            argv, image=str(reference), registries=(reference.registry,), what="inspect", written=written
        )
        if run.code == 0:
            return run.stdout, run
        text = run.stderr.decode("utf-8", errors="replace").lower()
        if any(marker in text for marker in _MISSING):
            return None, run
        raise self._failure(
            f"reading the manifest of {reference} from registry {reference.registry}",
            str(reference),
            (reference.registry,),
            run,
        )

    async def digest(self, reference: str | ImageReference) -> str:
        """The digest of the manifest ``reference`` names (by tag or digest); ImageCopyError if it is missing."""
        ref = _reference(reference)
        manifest, run = await self._raw_manifest(ref)
        if manifest is None:
            raise self._failure(
                f"reading the manifest of {ref} from registry {ref.registry}", str(ref), (ref.registry,), run
            )
        algorithm = (ref.digest or "sha256:").split(":", 1)[0]
        return manifest_digest(manifest, algorithm)

    async def exists(self, reference: str | ImageReference) -> bool:
        """Whether the registry holds the manifest ``reference`` names by digest, with exactly those bytes."""
        ref = _reference(reference)
        if ref.digest is None:
            raise UsageError(f"exists() needs a reference by digest, not {ref}")
        manifest, _ = await self._raw_manifest(ref)
        if manifest is None:
            return False
        actual = manifest_digest(manifest, ref.digest.split(":", 1)[0])
        if actual != ref.digest:
            raise ImageCopyError(
                f"registry {ref.registry} serves a manifest with digest {actual} for {ref}",
                image=str(ref),
                registries=(ref.registry,),
                hint="the registry's storage is corrupt",
            )
        return True

    async def copy(
        self,
        source_ref: str | ImageReference,
        destination_ref: str | ImageReference,
        *,
        expected_digest: str | None = None,
    ) -> str:
        """Copy an image (every image of a list) and verify it; returns its manifest digest.

        The digest must be ``expected_digest`` (or the source reference's digest) when one is known,
        what skopeo pushed, and what the destination serves afterwards.
        """
        source = _reference(source_ref)
        destination = _reference(destination_ref)
        expected = expected_digest or source.digest
        if expected is not None and not is_digest(expected):
            raise UsageError(f"invalid digest {expected!r}")
        image = str(source)
        registries = (source.registry, destination.registry)
        what = f"copying image {source} to {destination}"
        digest_file = self._directory() / f"digest-{next(self._names)}"
        argv = [
            self._binary,
            "--insecure-policy",
            "--tmpdir",
            str(self._directory() / "tmp"),
            "copy",
            "--all",
            "--preserve-digests",
            "--retry-times",
            str(self._retry_times),
            "--digestfile",
            str(digest_file),
        ]
        if self._remove_signatures:
            argv.append("--remove-signatures")
        written: list[Path] = []
        try:
            argv += self._registry_args(self.endpoint(source.registry), written, "src")
            argv += self._registry_args(self.endpoint(destination.registry), written, "dest")
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        argv += [f"docker://{source}", f"docker://{destination}"]
        run = await self._run(
            argv, image=image, registries=registries, what="copy", written=written, digest_file=digest_file
        )
        if run.code != 0:
            raise self._failure(what, image, registries, run)
        pushed = run.digest
        if not is_digest(pushed):
            raise ImageCopyError(
                f"{what}: skopeo reported no digest for what it pushed", image=image, registries=registries
            )
        if expected is not None and pushed != expected:
            raise ImageCopyError(
                f"{what}: the copy has digest {pushed}, not {expected}",
                image=image,
                registries=registries,
                hint="the image would have been converted; it must be copied unchanged",
            )
        served = await self.digest(destination)
        if served != pushed:
            raise ImageCopyError(
                f"{what}: registry {destination.registry} serves digest {served} for {destination} "
                f"after the copy, not {pushed}",
                image=image,
                registries=registries,
                hint="another push moved the tag meanwhile"
                if destination.tag and not destination.digest
                else None,
            )
        _log.debug("copied %s to %s (%s)", source, destination, pushed)
        return pushed
