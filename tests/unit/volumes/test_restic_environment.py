"""What restic's environment holds: the location's credentials win over the process's own of the same store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.runasync import run_async

from strongroom.volumes import Restic, ResticTarget

INHERITED = {
    "PATH": os.environ["PATH"],
    "HTTPS_PROXY": "http://proxy.internal:3128",
    "NO_PROXY": "127.0.0.1",
    "RESTIC_REPOSITORY": "s3:elsewhere/bucket",
    "RESTIC_PASSWORD_FILE": "/etc/other-password",
    "AWS_PROFILE": "node-profile",
    "AWS_SESSION_TOKEN": "node-session-token",
    "AZURE_ACCOUNT_SAS": "?sv=node-sas",
    "GOOGLE_ACCESS_TOKEN": "ya29.node-token",
    "GOOGLE_APPLICATION_CREDENTIALS": "/var/run/node-key.json",
}


def env_printer(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for the restic binary that records its environment and succeeds."""
    output = tmp_path / "environment"
    script = tmp_path / "restic"
    script.write_text(f"#!/bin/sh\nenv > {output}\n")
    script.chmod(0o755)
    return script, output


async def seen_by_restic(target: ResticTarget, tmp_path: Path) -> dict[str, str]:
    binary, output = env_printer(tmp_path)
    restic = Restic(target, cache_dir=tmp_path / "cache", binary=str(binary), environment=INHERITED)
    await restic.unlock()
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize(
    ("given", "dropped", "kept"),
    [
        (
            {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cret"},
            ["AWS_PROFILE", "AWS_SESSION_TOKEN"],
            ["AZURE_ACCOUNT_SAS", "GOOGLE_ACCESS_TOKEN"],
        ),
        (
            {"AZURE_ACCOUNT_NAME": "velerostore", "AZURE_ACCOUNT_KEY": "a2V5"},
            ["AZURE_ACCOUNT_SAS"],
            ["AWS_PROFILE", "GOOGLE_ACCESS_TOKEN"],
        ),
        (
            {"GOOGLE_APPLICATION_CREDENTIALS": "/scratch/credentials/key.json"},
            ["GOOGLE_ACCESS_TOKEN"],
            ["AWS_PROFILE", "AZURE_ACCOUNT_SAS"],
        ),
    ],
    ids=["s3", "azure", "gcs"],
)
@run_async
async def test_the_locations_credentials_replace_the_processs_own_of_the_same_store(
    given: dict[str, str], dropped: list[str], kept: list[str], tmp_path: Path
) -> None:
    seen = await seen_by_restic(ResticTarget(url="repo", password="pw", environment=given), tmp_path)
    for name, value in given.items():
        assert seen[name] == value
    for name in dropped:
        assert name not in seen
    for name in kept:
        assert seen[name] == INHERITED[name]
    # Proxies pass through; nothing may redirect restic to another repository or password.
    assert seen["HTTPS_PROXY"] == INHERITED["HTTPS_PROXY"]
    assert "RESTIC_REPOSITORY" not in seen and "RESTIC_PASSWORD_FILE" not in seen
    assert seen["RESTIC_PASSWORD"] == "pw"


@run_async
async def test_without_credentials_of_its_own_restic_uses_the_nodes(tmp_path: Path) -> None:
    seen = await seen_by_restic(ResticTarget(url="gs:bucket:/restic/app", password="pw"), tmp_path)
    for name in ("AWS_PROFILE", "AZURE_ACCOUNT_SAS", "GOOGLE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert seen[name] == INHERITED[name]


def test_every_store_secret_is_masked() -> None:
    target = ResticTarget(
        url="azure:c:/restic/app",
        password="pw",
        environment={
            "AZURE_ACCOUNT_NAME": "velerostore",
            "AZURE_ACCOUNT_KEY": "a2V5",
            "GOOGLE_ACCESS_TOKEN": "ya29",
        },
    )
    assert set(target.secrets) == {"pw", "a2V5", "ya29"}
