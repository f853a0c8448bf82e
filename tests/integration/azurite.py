"""A real Azure Blob service for the storage tests: Azurite, Microsoft's emulator, on 127.0.0.1.

``./dev test`` installs Azurite (npm) under .tools/; each test module starts
one in-memory instance on a free port with an account of its own (so the
account key is ours, not the well-known development key) and stops it when
the module is done. Containers are created with the official SDK, pinned to
an API version Azurite 3.35 understands.

With a certificate, Azurite serves HTTPS and also accepts Azure AD bearer
tokens (its "basic" OAuth check: claims, not signatures); ``TokenServer``
plays the Azure AD token endpoint that hands them out for a client secret.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from azure.storage.blob import BlobServiceClient
from tests.integration.serverproc import HOST, free_port, server_process

ACCOUNT = "strongroomtest"
# A 64-byte key of our own, base64 as Azure hands them out.
ACCOUNT_KEY = base64.b64encode(b"strongroom-azurite-test-account-key-never-log-me-0123456789abcd").decode()
REPOSITORY = Path(__file__).resolve().parents[2]
AZURITE_BLOB = REPOSITORY / ".tools" / "node_modules" / ".bin" / "azurite-blob"
# The newest API version Azurite 3.35 accepts; the SDK's default is newer.
API_VERSION = "2025-11-05"
# In-memory blobs are capped so that a runaway test cannot eat the machine (MiB).
EXTENT_MEMORY_LIMIT_MB = 512
# V8's semi-space (young generation) size for Azurite's node process (MiB).
NODE_SEMI_SPACE_MB = 128


def guide_credentials(client_secret: str, account_key: str = ACCOUNT_KEY) -> str:
    """The OADP guide's credentials-velero for Azure, holding this Azurite account's key."""
    return (
        "AZURE_SUBSCRIPTION_ID=00000000-1111-2222-3333-444444444444\n"
        "AZURE_TENANT_ID=11111111-2222-3333-4444-555555555555\n"
        "AZURE_CLIENT_ID=22222222-3333-4444-5555-666666666666\n"
        f"AZURE_CLIENT_SECRET={client_secret}\n"
        "AZURE_RESOURCE_GROUP=Velero_Backups\n"
        f"AZURE_STORAGE_ACCOUNT_ACCESS_KEY={account_key}\n"
        "AZURE_CLOUD_NAME=AzurePublicCloud\n"
    )


@dataclass
class Azurite:
    """One running Azurite blob service and the account it serves."""

    port: int
    process: subprocess.Popen[bytes]
    ca_file: Path | None = None
    account: str = ACCOUNT
    account_key: str = ACCOUNT_KEY

    @property
    def endpoint(self) -> str:
        """The account's blob service URL, path-style: what storageAccountURI holds for Azurite."""
        scheme = "https" if self.ca_file else "http"
        return f"{scheme}://{HOST}:{self.port}/{self.account}"

    def client(self) -> Any:
        """The official SDK with the account key, so it looks for no credentials elsewhere."""
        return BlobServiceClient(
            account_url=self.endpoint,
            credential={"account_name": self.account, "account_key": self.account_key},
            api_version=API_VERSION,
            connection_verify=str(self.ca_file) if self.ca_file else True,
        )

    def create_container(self, name: str) -> None:
        self.client().create_container(name)


@contextlib.contextmanager
def azurite(
    log_dir: Path,
    *,
    certificate: tuple[Path, Path, Path] | None = None,
    on_disk: bool = False,
) -> Iterator[Azurite]:
    """Run Azurite's blob service until the block ends.

    ``certificate`` is (ca, cert, key): serve HTTPS and accept Azure AD tokens as well.
    ``on_disk`` keeps blobs in files under ``log_dir`` rather than in memory (large objects).
    """
    if not os.access(AZURITE_BLOB, os.X_OK):
        raise AssertionError(
            f"Azurite is not installed at {AZURITE_BLOB}: run ./dev test, which installs it under .tools/"
        )
    port = free_port()
    command = [
        str(AZURITE_BLOB),
        "--blobHost",
        HOST,
        "--blobPort",
        str(port),
        "--silent",
        "--disableTelemetry",
    ]
    if on_disk:
        command += ["--location", str(log_dir / f"azurite-{port}")]
    else:
        command += ["--inMemoryPersistence", "--extentMemoryLimit", str(EXTENT_MEMORY_LIMIT_MB)]
    if certificate is not None:
        command += ["--cert", str(certificate[1]), "--key", str(certificate[2]), "--oauth", "basic"]
    # A larger young generation: with V8's default, Azurite spends much of a burst of small
    # requests collecting garbage (5,010 puts took 9.4 s; 5.8 s with this).
    node_options = f"{os.environ.get('NODE_OPTIONS', '')} --max-semi-space-size={NODE_SEMI_SPACE_MB}".strip()
    environment = {
        **os.environ,
        "AZURITE_ACCOUNTS": f"{ACCOUNT}:{ACCOUNT_KEY}",
        "NODE_OPTIONS": node_options,
    }
    ca_file = certificate[0] if certificate else None
    scheme = "https" if ca_file else "http"
    # Any HTTP answer (an unauthenticated request gets an error status) means it is serving.
    probe = f"{scheme}://{HOST}:{port}/{ACCOUNT}?comp=list"
    log_path = log_dir / f"azurite-{port}.log"
    with server_process(
        "azurite-blob", command, log_path, probe, env=environment, ca_file=ca_file, any_status=True
    ) as process:
        yield Azurite(port, process, ca_file)


@dataclass
class TokenServer:
    """The Azure AD token endpoint over HTTPS: a JWT for the one client secret it knows, 401 otherwise.

    Azurite checks a token's audience, issuer prefix and lifetime, and a user
    delegation key needs its oid and tid; it does not check signatures.
    """

    certificate: tuple[Path, Path]
    tenant_id: str
    client_id: str
    client_secret: str
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def authority(self) -> str:
        """What activeDirectoryAuthorityURI holds: tokens come from <authority>/<tenant>/oauth2/v2.0/token."""
        assert self._server is not None
        return f"https://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> TokenServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                form = parse_qs(body.decode("ascii"))
                owner.requests.append((self.path, form))
                if form.get("client_secret") == [owner.client_secret] and form.get("client_id") == [
                    owner.client_id
                ]:
                    self._answer(
                        200, {"access_token": owner.token(), "expires_in": 3600, "token_type": "Bearer"}
                    )
                else:
                    self._answer(
                        401,
                        {
                            "error": "invalid_client",
                            "error_description": "AADSTS7000215: Invalid client secret provided.",
                        },
                    )

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((HOST, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate[0], self.certificate[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": "33333333-4444-5555-6666-777777777777",
            "tid": self.tenant_id,
        }
        return ".".join(_b64url(part) for part in ({"alg": "RS256", "typ": "JWT"}, claims)) + ".c2lnbmF0dXJl"


def _b64url(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode("ascii")
