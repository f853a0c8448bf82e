"""Restore: decide what to create from a backup and in which order, then apply it.

The deciding half is pure: `priorities` (Velero's restore order and the
resources never restored), `plan` (filters, namespace mapping, metadata
reset, per-kind rules, phases), `actions` (the per-kind rules themselves)
and `compare` (what to do when an object already exists); none of them
talks to a cluster or to storage. `request` resolves a Restore against the
target cluster and `runner` applies it: verify the backup, spool its items,
create them in order.
"""

from __future__ import annotations

from strongroom.restore.actions import ItemRef
from strongroom.restore.compare import ExistingDecision, Outcome, compare_existing, merge_patch, render_diff
from strongroom.restore.plan import (
    Failed,
    Phase,
    PhaseKind,
    Plan,
    Prepared,
    PVRestore,
    RestoreOptions,
    RestoreState,
    SkipCode,
    Skipped,
    VolumeBackupMethod,
    plan_restore,
    prepare_item,
    validate_options,
)
from strongroom.restore.priorities import (
    DEFAULT_RESTORE_PRIORITIES,
    NEVER_RESTORE,
    Priorities,
    order_resources,
    parse_priorities,
)

__all__ = [
    "DEFAULT_RESTORE_PRIORITIES",
    "NEVER_RESTORE",
    "ExistingDecision",
    "Failed",
    "ItemRef",
    "Outcome",
    "PVRestore",
    "Phase",
    "PhaseKind",
    "Plan",
    "Prepared",
    "Priorities",
    "RestoreOptions",
    "RestoreState",
    "SkipCode",
    "Skipped",
    "VolumeBackupMethod",
    "compare_existing",
    "merge_patch",
    "order_resources",
    "parse_priorities",
    "plan_restore",
    "prepare_item",
    "render_diff",
    "validate_options",
]
