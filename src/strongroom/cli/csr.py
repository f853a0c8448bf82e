"""``strongroom csr list|approve|deny``: certificate signing requests, judged before they are approved.

Where the seed loops ``oc adm certificate approve`` over every pending CSR,
``approve --all-valid`` approves only those that pass the kubelet's rules
(``strongroom.cluster.csr``) and lists every other pending one with its
reasons. Naming an invalid CSR is refused unless ``--force``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom.cli.common import (
    ContextOption,
    KubeconfigOption,
    Output,
    OutputOption,
    emit,
    kube_client,
    print_table,
    run,
)
from strongroom.errors import ConflictError, NotFoundError, UsageError

if TYPE_CHECKING:
    from strongroom.cluster.csr import CsrReview, Reviewed

__all__ = ["csr_app"]

csr_app = typer.Typer(
    help="Certificate signing requests: list, approve and deny, with the kubelet's rules.",
    no_args_is_help=True,
)


def _row(item: Reviewed) -> dict[str, Any]:
    metadata = item.csr.get("metadata") or {}
    return {
        "name": item.name,
        "created": metadata.get("creationTimestamp"),
        "signer": item.judgement.signer,
        "requester": item.judgement.requester,
        "node": item.judgement.node,
        "condition": item.state,
        "valid": item.judgement.valid,
        "reasons": list(item.judgement.reasons),
    }


def _print(items: list[Reviewed]) -> None:
    print_table(
        ["NAME", "SIGNER", "REQUESTER", "NODE", "CONDITION", "VALID"],
        [
            (
                i.name,
                i.judgement.signer,
                i.judgement.requester,
                i.judgement.node or "",
                i.state,
                "yes" if i.judgement.valid else "NO: " + "; ".join(i.judgement.reasons),
            )
            for i in items
        ],
    )


async def _review(kubeconfig: str | None, context: str | None) -> list[Reviewed]:
    from strongroom.cluster.csr import CsrReview

    async with kube_client(kubeconfig, context) as kube:
        return await CsrReview(kube, await kube.discover()).review()


@csr_app.command("list")
def list_command(
    pending: Annotated[
        bool, typer.Option("--pending", help="Only the CSRs still waiting for a decision.")
    ] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Every CSR with its condition, and whether it passes the kubelet's rules (and why not)."""
    items = run(_review(kubeconfig, context))
    if pending:
        items = [i for i in items if i.state == "Pending"]
    emit([_row(i) for i in items], output, lambda: _print(items))


@csr_app.command("approve")
def approve(
    names: Annotated[list[str] | None, typer.Argument(help="CSRs to approve.")] = None,
    all_valid: Annotated[
        bool,
        typer.Option("--all-valid", help="Approve every pending CSR that passes the rules, and only those."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Approve a named CSR although it fails the rules.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be approved; change nothing.")
    ] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Approve CSRs: the named ones, or with --all-valid every valid pending one."""
    if bool(names) == all_valid:
        raise UsageError("name the CSRs to approve, or give --all-valid (one of them)")
    approved = run(_decide(names or [], all_valid, force, dry_run, True, "", kubeconfig, context))
    if all_valid and not approved:
        typer.echo("no pending CSR passes the rules", err=True)


@csr_app.command("deny")
def deny(
    names: Annotated[list[str], typer.Argument(help="CSRs to deny.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the Denied condition.")] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be denied; change nothing.")
    ] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Deny the named CSRs."""
    run(_decide(names, False, True, dry_run, False, reason, kubeconfig, context))


async def _decide(
    names: list[str],
    all_valid: bool,
    force: bool,
    dry_run: bool,
    approve: bool,
    reason: str,
    kubeconfig: str | None,
    context: str | None,
) -> list[str]:
    from strongroom.cluster.csr import CsrReview

    verb = "approved" if approve else "denied"
    async with kube_client(kubeconfig, context) as kube:
        review = CsrReview(kube, await kube.discover())
        items = await review.review()
        by_name = {i.name: i for i in items}
        if all_valid:
            chosen = [i for i in items if i.state == "Pending" and i.judgement.valid]
            for item in items:
                if item.state == "Pending" and not item.judgement.valid:
                    typer.echo(f"left pending {item.name}: {'; '.join(item.judgement.reasons)}", err=True)
        else:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise NotFoundError(f"no CertificateSigningRequest named {', '.join(missing)}")
            chosen = [by_name[n] for n in names]
            bad = [i for i in chosen if approve and not i.judgement.valid and not force]
            if bad:
                lines = "; ".join(f"{i.name}: {', '.join(i.judgement.reasons)}" for i in bad)
                raise ConflictError(
                    f"refusing to approve CSRs that fail the kubelet's rules: {lines}", hint="--force"
                )
        done: list[str] = []
        for item in chosen:
            if dry_run:
                typer.echo(f"would be {verb}: {item.name}")
                continue
            await _one(review, item, approve, reason)
            typer.echo(f"certificatesigningrequest/{item.name} {verb}")
            done.append(item.name)
        return done


async def _one(review: CsrReview, item: Reviewed, approve: bool, reason: str) -> None:
    if approve:
        message = "approved by strongroom: " + (
            "passes the kubelet rules"
            if item.judgement.valid
            else "forced: " + "; ".join(item.judgement.reasons)
        )
    else:
        message = reason or "denied by strongroom"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await review.decide(item, approve=approve, message=message, now=now)
