"""Backup storage locations in local mode: a small file the user owns.

From a workstation there is no BackupStorageLocation resource to read, so
``strongroom backup-location create|get|set|delete`` keep the same
information (provider, bucket, prefix, config, credentials file, CA bundle,
default, access mode) in ``<config dir>/locations.yaml``. When the file names
no location, one is built in: ``default``, a local directory under the config
directory, so that the first backup needs no set-up at all.

The file holds paths to credentials, never the credentials themselves.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import yaml

from strongroom.errors import ConflictError, NotFoundError, UsageError
from strongroom.storage import Layout, ObjectStore, StoreCredentials, open_store, parse_location_credentials
from strongroom.storage.factory import PROVIDERS

__all__ = [
    "BUILTIN_DEFAULT",
    "Location",
    "LocationRegistry",
    "absolute",
    "open_location",
]

BUILTIN_DEFAULT: Final = "default"
ACCESS_MODES: Final = ("ReadWrite", "ReadOnly")
_FILE_NAME: Final = "locations.yaml"
_NAME_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class Location:
    """One backup storage location, as a BackupStorageLocation's spec says it."""

    name: str
    provider: str
    bucket: str
    prefix: str = ""
    config: Mapping[str, str] = field(default_factory=dict)
    credential_file: str | None = None
    ca_cert_file: str | None = None
    default: bool = False
    access_mode: str = "ReadWrite"
    builtin: bool = False

    @property
    def read_only(self) -> bool:
        return self.access_mode == "ReadOnly"

    def to_json(self) -> dict[str, Any]:
        """The location as a BackupStorageLocation manifest (credentials by file name only)."""
        object_storage: dict[str, Any] = {"bucket": self.bucket}
        if self.prefix:
            object_storage["prefix"] = self.prefix
        if self.ca_cert_file:
            object_storage["caCertFile"] = self.ca_cert_file
        spec: dict[str, Any] = {
            "provider": self.provider,
            "objectStorage": object_storage,
            "default": self.default,
            "accessMode": self.access_mode,
        }
        if self.config:
            spec["config"] = dict(self.config)
        if self.credential_file:
            spec["credentialFile"] = self.credential_file
        return {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation",
            "metadata": {"name": self.name},
            "spec": spec,
        }

    def check(self) -> None:
        """Refuse a location that could never be opened, before it is saved."""
        if not _NAME_RE.fullmatch(self.name) or len(self.name) > 253:
            raise UsageError(
                f"invalid location name {self.name!r}",
                hint="use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
            )
        if self.provider.removeprefix("velero.io/") not in PROVIDERS:
            raise UsageError(
                f"unsupported provider {self.provider!r}",
                hint=f"use one of: {', '.join(PROVIDERS)}",
            )
        if not self.bucket:
            raise UsageError("a location needs --bucket (a bucket name, or a directory for --provider local)")
        if self.access_mode not in ACCESS_MODES:
            raise UsageError(f"invalid access mode {self.access_mode!r}", hint="use ReadWrite or ReadOnly")
        for what, path in (
            ("credential file", self.credential_file),
            ("CA certificate file", self.ca_cert_file),
        ):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"{what} {path!r} does not exist or is not a file")


class LocationRegistry:
    """The locations of one config directory."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.path = config_dir / _FILE_NAME

    def builtin_default(self) -> Location:
        return Location(
            name=BUILTIN_DEFAULT,
            provider="local",
            bucket=str(self.config_dir / "storage"),
            default=True,
            builtin=True,
        )

    def locations(self) -> list[Location]:
        """Every configured location, or the built-in default when none is."""
        stored = self._load()
        return stored or [self.builtin_default()]

    def get(self, name: str) -> Location:
        for location in self.locations():
            if location.name == name:
                return location
        raise NotFoundError(
            f"backup storage location {name!r} not found",
            hint="list them with `strongroom backup-location get`",
        )

    def default(self) -> Location:
        """The location used when a command names none."""
        locations = self.locations()
        defaults = [location for location in locations if location.default]
        if defaults:
            return defaults[0]
        if len(locations) == 1:
            return locations[0]
        raise UsageError(
            "no default backup storage location is set",
            hint="pass --storage-location NAME, or mark one with `strongroom backup-location set NAME --default`",
        )

    def resolve(self, name: str | None) -> Location:
        return self.default() if name is None else self.get(name)

    def create(self, location: Location) -> Location:
        location.check()
        stored = self._load()
        if any(existing.name == location.name for existing in stored):
            raise ConflictError(f"backup storage location {location.name!r} already exists")
        if location.default:
            stored = [replace(existing, default=False) for existing in stored]
        elif not stored:
            # The first location replaces the built-in default; it becomes the default too.
            location = replace(location, default=True)
        self._save([*stored, location])
        return location

    def update(self, name: str, **changes: Any) -> Location:
        stored = self._load()
        for index, existing in enumerate(stored):
            if existing.name == name:
                updated = replace(existing, **changes)
                updated.check()
                if updated.default:
                    stored = [replace(other, default=False) for other in stored]
                stored[index] = updated
                self._save(stored)
                return updated
        if name == BUILTIN_DEFAULT and not stored:
            raise UsageError(
                "the built-in default location cannot be changed",
                hint="create a location of your own with `strongroom backup-location create`",
            )
        raise NotFoundError(f"backup storage location {name!r} not found")

    def delete(self, name: str) -> Location:
        stored = self._load()
        remaining = [location for location in stored if location.name != name]
        if len(remaining) == len(stored):
            raise NotFoundError(f"backup storage location {name!r} not found")
        removed = next(location for location in stored if location.name == name)
        self._save(remaining)
        return removed

    def _load(self) -> list[Location]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{self.path} is not valid YAML: {exc}") from exc
        entries = document.get("locations", []) if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise UsageError(f"{self.path}: 'locations' must be a list")
        locations = []
        for number, entry in enumerate(entries, 1):
            if not isinstance(entry, dict):
                raise UsageError(f"{self.path}: location {number} is not a mapping")
            try:
                locations.append(Location(**{_snake(key): value for key, value in entry.items()}))
            except TypeError as exc:
                raise UsageError(f"{self.path}: location {number}: {exc}") from exc
        return locations

    def _save(self, locations: list[Location]) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for location in locations:
            entry = {_camel(key): value for key, value in asdict(location).items() if key != "builtin"}
            entry["config"] = dict(location.config)
            entries.append({key: value for key, value in entry.items() if value not in (None, "", {})})
        text = yaml.safe_dump({"locations": entries}, sort_keys=False)
        # Written beside and renamed over, so a crash never leaves half a file.
        handle, temporary = tempfile.mkstemp(dir=self.config_dir, prefix=".locations-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def open_location(location: Location) -> tuple[ObjectStore, Layout]:
    """The object store of a location, confined to its prefix, and its layout."""
    config = dict(location.config)
    if location.ca_cert_file:
        config["caCert"] = location.ca_cert_file
    credentials: StoreCredentials | None = None
    if location.credential_file:
        try:
            content = Path(location.credential_file).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read the credential file {location.credential_file!r} of location {location.name!r}: {exc.strerror}"
            ) from exc
        # Parsed here so that a mistake names the file and its line.
        credentials = parse_location_credentials(
            location.provider, content, config, source=location.credential_file
        )
    if location.provider == "local":
        try:
            Path(location.bucket).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"the directory {location.bucket!r} of location {location.name!r} cannot be used: {exc.strerror}"
            ) from exc
    store = open_store(location.provider, location.bucket, location.prefix, config, credentials)
    return store, Layout()


def absolute(location: Location) -> Location:
    """The location with its file paths made absolute, so it works from any directory."""
    changes: dict[str, Any] = {}
    for field_name in ("credential_file", "ca_cert_file"):
        value = getattr(location, field_name)
        if value:
            changes[field_name] = str(Path(value).expanduser().resolve())
    if location.provider == "local" and location.bucket:
        changes["bucket"] = str(Path(location.bucket).expanduser().resolve())
    return replace(location, **changes) if changes else location


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda match: "_" + match.group(1).lower(), key)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)
