"""Which etcd snapshots to keep: the newest N, one a day, one a week.

Pruning deletes backups, so it must be predictable: the same policy on the
same list always keeps the same snapshots, every kept snapshot says why, and
the newest verified snapshot is never pruned whatever the policy says (it may
be the only one known to restore).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from strongroom.errors import UsageError
from strongroom.etcd.snapshot import StoredSnapshot

__all__ = ["Retention", "RetentionResult", "select"]


@dataclass(frozen=True)
class Retention:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0

    def __post_init__(self) -> None:
        if min(self.keep_last, self.keep_daily, self.keep_weekly) < 0:
            raise UsageError("retention counts cannot be negative")

    @property
    def empty(self) -> bool:
        return not (self.keep_last or self.keep_daily or self.keep_weekly)

    def describe(self) -> str:
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.keep_last, "newest"),
                (self.keep_daily, "daily"),
                (self.keep_weekly, "weekly"),
            )
            if count
        ]
        return "keep " + ", ".join(parts) if parts else "keep nothing"


@dataclass
class RetentionResult:
    keep: dict[str, list[str]] = field(default_factory=dict)
    remove: list[StoredSnapshot] = field(default_factory=list)


def select(snapshots: Sequence[StoredSnapshot], policy: Retention) -> RetentionResult:
    """Split ``snapshots`` into kept (with reasons) and removed, newest first."""
    if policy.empty:
        raise UsageError(
            "a retention policy must keep something", hint="give --keep-last, --keep-daily or --keep-weekly"
        )
    ordered = sorted(snapshots, key=lambda s: s.created, reverse=True)
    result = RetentionResult()

    def keep(snap: StoredSnapshot, reason: str) -> None:
        result.keep.setdefault(snap.name, []).append(reason)

    for snap in ordered[: policy.keep_last]:
        keep(snap, "newest")
    for count, bucket, label in (
        (policy.keep_daily, lambda s: s.created.strftime("%Y-%m-%d"), "daily"),
        (
            policy.keep_weekly,
            lambda s: f"{s.created.isocalendar()[0]}-W{s.created.isocalendar()[1]:02d}",
            "weekly",
        ),
    ):
        seen: list[str] = []
        for snap in ordered:
            key = bucket(snap)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.append(key)
            keep(snap, f"{label} {key}")
    newest_verified = next((s for s in ordered if s.verified), None)
    if newest_verified is not None:
        keep(newest_verified, "newest verified")
    result.remove = [s for s in ordered if s.name not in result.keep]
    return result
