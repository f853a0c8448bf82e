"""`strongroom backup-location create|get|set|delete`: where backups are stored, in local mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import typer

from strongroom.cli.common import (
    ContextOption,
    KubeconfigOption,
    Output,
    OutputOption,
    confirm,
    emit,
    print_table,
    registry,
    run,
    split_list,
)
from strongroom.cli.server_mode import ModeOption, ServerNamespaceOption, choose
from strongroom.errors import UsageError
from strongroom.locations import ACCESS_MODES, Location, absolute, open_location
from strongroom.storage import validate_top_level

location_app = typer.Typer(help="Manage backup storage locations.", no_args_is_help=True)

ConfigOption = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        help="Provider settings as key=value pairs, comma separated (region=..,s3Url=..,s3ForcePathStyle=true,insecureSkipTLSVerify=true,profile=..).",
    ),
]


CredentialOption = Annotated[
    str | None,
    typer.Option(
        "--credential",
        help="Server mode: the Secret and key holding the location's credentials, as SECRET=KEY "
        "(e.g. cloud-credentials=cloud).",
    ),
]


def _server_only_credentials(credential_file: str | None) -> None:
    if credential_file is not None:
        raise UsageError(
            "--credential-file names a file on this host, which the server cannot read",
            hint="store the credentials in a Secret in the server's namespace and pass --credential SECRET=KEY",
        )


def _local_only_credentials(credential: str | None) -> None:
    if credential is not None:
        raise UsageError(
            "--credential names a Secret for the server; local mode reads credentials from a file",
            hint="pass --credential-file PATH",
        )


def parse_config(values: list[str] | None) -> dict[str, str]:
    """``--config a=b,c=d`` as velero parses it: every pair needs a key and '='."""
    result: dict[str, str] = {}
    for pair in split_list(values):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"invalid --config entry {pair!r}",
                hint="use key=value pairs, e.g. region=us-east-1,s3ForcePathStyle=true",
            )
        result[key.strip()] = value.strip()
    return result


def merge_config(current: Mapping[str, str], changes: Mapping[str, str]) -> dict[str, str]:
    """``set --config``: the keys are merged into the location's config, and ``key=`` removes one."""
    merged = dict(current)
    for key, value in changes.items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    return merged


def _check_access_mode(value: str | None) -> None:
    if value is not None and value not in ACCESS_MODES:
        raise UsageError(f"invalid --access-mode {value!r}", hint="use ReadWrite or ReadOnly")


@location_app.command()
def create(
    name: Annotated[str, typer.Argument(help="Name of the location.")],
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            help="aws (S3 and S3-compatible stores), azure (Blob Storage), gcp (Cloud Storage) or local (a directory).",
        ),
    ],
    bucket: Annotated[
        str, typer.Option("--bucket", help="Bucket name, or a directory for --provider local.")
    ],
    prefix: Annotated[str, typer.Option("--prefix", help="Prefix inside the bucket.")] = "",
    config: ConfigOption = None,
    credential_file: Annotated[
        str | None, typer.Option("--credential-file", help="Credentials file in the AWS profile format.")
    ] = None,
    cacert: Annotated[
        str | None, typer.Option("--cacert", help="CA bundle (PEM file) to trust for the store's TLS.")
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Use this location when a command names none.")
    ] = False,
    access_mode: Annotated[str, typer.Option("--access-mode", help="ReadWrite or ReadOnly.")] = "ReadWrite",
    skip_check: Annotated[
        bool, typer.Option("--skip-check", help="Save without connecting to the store to check it.")
    ] = False,
    credential: CredentialOption = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--labels", help="Server mode: labels of the BackupStorageLocation (key=value,...)."),
    ] = None,
    backup_sync_period: Annotated[
        str | None,
        typer.Option(
            "--backup-sync-period",
            help="Server mode: how often the server syncs backups from storage (Go duration; 0s disables).",
        ),
    ] = None,
    validation_frequency: Annotated[
        str | None,
        typer.Option(
            "--validation-frequency",
            help="Server mode: how often the server validates the location (Go duration; 0s disables).",
        ),
    ] = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Add a backup storage location."""
    _check_access_mode(access_mode)

    def given() -> Location:
        # Built once each mode has refused the other's credential flag, so that
        # error comes first; local mode stores --cacert's path, the server its content.
        return Location(
            name=name,
            provider=provider,
            bucket=bucket,
            prefix=prefix,
            config=parse_config(config),
            credential_file=credential_file,
            ca_cert_file=cacert,
            default=default,
            access_mode=access_mode,
        )

    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.backup.request import parse_labels
        from strongroom.cli.server_commands import create_location

        _server_only_credentials(credential_file)
        create_location(
            target,
            given(),
            credential=credential,
            labels=parse_labels(split_list(labels)),
            backup_sync_period=backup_sync_period,
            validation_frequency=validation_frequency,
        )
        return
    _local_only_credentials(credential)
    for flag, value in (
        ("--labels", labels),
        ("--backup-sync-period", backup_sync_period),
        ("--validation-frequency", validation_frequency),
    ):
        if value:
            raise UsageError(
                f"{flag} works in server mode only: local mode has no server to sync or validate"
            )
    location = absolute(given())
    location.check()
    # Opening validates the provider's config and credentials now, not at the first backup.
    store, layout = open_location(location)
    if not skip_check:
        run(validate_top_level(store, layout))
    saved = registry().create(location)
    typer.echo(f'Backup storage location "{saved.name}" configured successfully.')


@location_app.command()
def get(
    name: Annotated[str | None, typer.Argument(help="Show only this location.")] = None,
    output: OutputOption = Output.table,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """List backup storage locations."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import get_locations

        get_locations(target, name, output)
        return
    locations = [registry().get(name)] if name else registry().locations()
    document = (
        locations[0].to_json()
        if name
        else {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocationList",
            "items": [loc.to_json() for loc in locations],
        }
    )

    def table() -> None:
        print_table(
            ["NAME", "PROVIDER", "BUCKET/PREFIX", "ACCESS MODE", "DEFAULT"],
            [
                (
                    loc.name,
                    loc.provider,
                    f"{loc.bucket}/{loc.prefix}" if loc.prefix else loc.bucket,
                    loc.access_mode,
                    "true" if loc.default else "",
                )
                for loc in locations
            ],
        )

    emit(document, output, table)


@location_app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="Name of the location.")],
    default: Annotated[
        bool | None, typer.Option("--default/--no-default", help="Make it the default location.")
    ] = None,
    config: ConfigOption = None,
    credential_file: Annotated[
        str | None, typer.Option("--credential-file", help="New credentials file.")
    ] = None,
    cacert: Annotated[str | None, typer.Option("--cacert", help="New CA bundle file.")] = None,
    access_mode: Annotated[str | None, typer.Option("--access-mode", help="ReadWrite or ReadOnly.")] = None,
    credential: CredentialOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Change a backup storage location."""
    _check_access_mode(access_mode)
    if all(value is None for value in (default, config, credential_file, cacert, access_mode, credential)):
        raise UsageError(
            "nothing to change",
            hint="pass --default, --config, --credential (server) or --credential-file (local), --cacert or --access-mode",
        )
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import set_location

        _server_only_credentials(credential_file)
        set_location(
            target,
            name,
            default=default,
            config=parse_config(config) if config is not None else None,
            credential=credential,
            cacert=cacert,
            access_mode=access_mode,
        )
        return
    _local_only_credentials(credential)
    current = registry().get(name)
    changes: dict[str, Any] = {}
    if default is not None:
        changes["default"] = default
    if config is not None:
        changes["config"] = merge_config(current.config, parse_config(config))
    if credential_file is not None:
        changes["credential_file"] = credential_file
    if cacert is not None:
        changes["ca_cert_file"] = cacert
    if access_mode is not None:
        changes["access_mode"] = access_mode
    if not changes:
        raise UsageError(
            "nothing to change", hint="pass --default, --config, --credential-file, --cacert or --access-mode"
        )
    updated = absolute(replace(current, **changes))
    updated.check()
    # The new settings must open, or the location would be saved broken.
    open_location(updated)
    registry().update(name, **{key: getattr(updated, key) for key in changes})
    typer.echo(f'Backup storage location "{name}" configured successfully.')


@location_app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Name of the location.")],
    confirm_flag: Annotated[bool, typer.Option("--confirm", help="Do not ask for confirmation.")] = False,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Forget a backup storage location; the backups stored there are kept."""
    if not confirm_flag:
        confirm(f"Delete backup storage location {name!r}? Its backups stay in storage.")
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import delete_location

        delete_location(target, name)
        return
    registry().delete(name)
    typer.echo(f'Backup storage location "{name}" deleted; the backups stored there are untouched.')
