"""What the registry and the copier share about their binaries: finding, running, stopping, and masking.

Both ``docker-registry`` and ``skopeo`` are Go programs driven as subprocesses
(as ``strongroom.volumes.restic`` drives restic): they run in a session of
their own, so a cancelled caller can stop them (SIGTERM, then SIGKILL after a
grace period) without touching anything else, and what they print reaches a
message only as its last lines with every known secret masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
from collections.abc import Iterable
from typing import Final

from strongroom.errors import StrongroomError

__all__ = ["REDACTED", "find_binary", "mask", "readable_lines", "stop_process", "tail"]

REDACTED: Final = "<redacted>"
# Go programs log with logrus: time="..." level=fatal msg="..." ; the message is what a person reads.
_LOGRUS_MESSAGE = re.compile(r'\bmsg="((?:[^"\\]|\\.)*)"')
_LOGRUS_DETAIL = re.compile(r'\berr\.detail="((?:[^"\\]|\\.)*)"')
# A URL's query: an upload's state token, or a presigned URL's signature; never worth showing.
_URL_QUERY = re.compile(r"(https?://[^\s\"?]+)\?[^\s\"]*")


def find_binary(name: str, explicit: str | None, *, package: str, purpose: str) -> str:
    """``explicit`` or ``name`` on PATH; a StrongroomError with the Debian package to install otherwise."""
    wanted = explicit or name
    found = shutil.which(wanted)
    if found is None:
        raise StrongroomError(
            f"the {name} binary {wanted!r} was not found: it is needed to {purpose}",
            hint=f"install it (Debian: apt-get install {package}) or put it on PATH",
        )
    return found


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret blanked, longest first (one secret may contain another)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def readable_lines(text: str) -> list[str]:
    """The lines of a Go program's output as a person reads them: logrus's message (and detail) only."""
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        message = _LOGRUS_MESSAGE.search(line)
        if message is not None:
            readable = _unescape(message.group(1))
            detail = _LOGRUS_DETAIL.search(line)
            if detail is not None:
                readable = f"{readable}: {_unescape(detail.group(1))}"
            line = readable
        lines.append(" ".join(_URL_QUERY.sub(r"\1", line).split()))
    return lines


def tail(text: str, secrets: Iterable[str], *, lines: int = 6) -> str:
    """The last ``lines`` readable lines of ``text``, masked and joined with "; "."""
    secrets = tuple(secrets)
    # Masked before and after unescaping: a secret may be printed quoted, with escapes, or plain.
    return mask("; ".join(readable_lines(mask(text, secrets))[-lines:]), secrets)


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", " ").replace("\\t", " ").replace("\\\\", "\\")


async def stop_process(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds; returns once it has exited."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
