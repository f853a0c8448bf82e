"""Local-mode backup storage locations: the built-in default, creation, defaults, changes, a file that survives crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from strongroom.errors import ConflictError, NotFoundError, UsageError
from strongroom.locations import BUILTIN_DEFAULT, Location, LocationRegistry, open_location


def test_without_configuration_the_builtin_default_is_a_local_directory(tmp_path: Path) -> None:
    registry = LocationRegistry(tmp_path / "cfg")
    default = registry.default()
    assert default.name == BUILTIN_DEFAULT and default.provider == "local" and default.builtin
    assert default.bucket == str(tmp_path / "cfg" / "storage")
    assert not registry.path.exists()


def test_first_location_replaces_the_builtin_default_and_becomes_default(tmp_path: Path) -> None:
    registry = LocationRegistry(tmp_path)
    registry.create(Location("minio", "aws", "velero-bucket", config={"region": "minio"}))
    assert [loc.name for loc in registry.locations()] == ["minio"]
    assert registry.default().name == "minio"
    with pytest.raises(NotFoundError):
        registry.get(BUILTIN_DEFAULT)


def test_only_one_default(tmp_path: Path) -> None:
    registry = LocationRegistry(tmp_path)
    registry.create(Location("a", "local", str(tmp_path / "a")))
    registry.create(Location("b", "local", str(tmp_path / "b"), default=True))
    assert registry.default().name == "b"
    assert not registry.get("a").default
    registry.update("a", default=True)
    assert registry.default().name == "a" and not registry.get("b").default


def test_duplicate_names_and_bad_values_are_refused(tmp_path: Path) -> None:
    registry = LocationRegistry(tmp_path)
    registry.create(Location("a", "local", str(tmp_path / "a")))
    with pytest.raises(ConflictError):
        registry.create(Location("a", "local", str(tmp_path / "a")))
    with pytest.raises(UsageError, match="unsupported provider"):
        registry.create(Location("c", "azure-blob", "x"))
    with pytest.raises(UsageError, match="invalid location name"):
        registry.create(Location("Bad_Name", "local", "x"))
    with pytest.raises(UsageError, match="does not exist"):
        registry.create(Location("d", "aws", "x", credential_file=str(tmp_path / "nope")))
    with pytest.raises(UsageError, match="access mode"):
        registry.update("a", access_mode="WriteOnly")
    assert [loc.name for loc in registry.locations()] == ["a"]


def test_the_file_holds_paths_not_secrets_and_reads_back(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id=AKIA\naws_secret_access_key=very-secret\n")
    registry = LocationRegistry(tmp_path / "cfg")
    registry.create(
        Location("s3", "aws", "bucket", "pre", {"region": "eu-west-1"}, credential_file=str(credentials))
    )
    text = registry.path.read_text()
    assert "very-secret" not in text
    document = yaml.safe_load(text)
    assert document["locations"][0]["credentialFile"] == str(credentials)
    again = LocationRegistry(tmp_path / "cfg").get("s3")
    assert again.prefix == "pre" and again.config == {"region": "eu-west-1"} and again.default


def test_delete_and_malformed_file(tmp_path: Path) -> None:
    registry = LocationRegistry(tmp_path)
    registry.create(Location("a", "local", str(tmp_path / "a")))
    registry.delete("a")
    assert registry.locations()[0].builtin
    with pytest.raises(NotFoundError):
        registry.delete("a")
    registry.path.write_text("locations: {not: a list}")
    with pytest.raises(UsageError, match="must be a list"):
        registry.locations()
    registry.path.write_text("locations:\n  - name: x\n    colour: blue\n")
    with pytest.raises(UsageError, match="location 1"):
        registry.locations()


def test_open_location_creates_the_local_directory(tmp_path: Path) -> None:
    store, layout = open_location(Location("l", "local", str(tmp_path / "new" / "dir"), prefix="p"))
    assert (tmp_path / "new" / "dir").is_dir()
    assert layout.backups_dir == "backups/"
    assert "p" in store.location
