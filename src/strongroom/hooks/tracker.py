"""Counting hooks for ``status.hookStatus`` (hooksAttempted / hooksFailed), the way Velero counts them.

``velero backup describe`` and ``velero restore describe`` print
``HooksAttempted`` and ``HooksFailed``; administrators compare them between
runs and between tools, so the numbers follow Velero's hook tracker:

* a hook is attempted once it was chosen for a pod (counted once per pod,
  phase, source, hook name, container and position, however often it is
  seen);
* it is failed when its outcome is recorded as a failure, and an outcome is
  recorded only once.

What "chosen" and "failure" mean for each side is decided by the runners
(see :mod:`strongroom.hooks.backup` and :mod:`strongroom.hooks.restore`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from strongroom.model.velero import HookStatus

__all__ = ["HookKey", "HookTracker"]


@dataclass(frozen=True)
class HookKey:
    """Identifies one hook in one pod: where it was declared, its position, and its container.

    `phase` is ``pre``/``post`` for backup hooks and "" for restore hooks.
    """

    namespace: str
    pod: str
    phase: str
    source: str
    name: str
    container: str
    index: int


class HookTracker:
    """Attempted and failed hooks of one backup or restore; safe to share between tasks and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorded: dict[HookKey, bool] = {}
        self._pending: set[HookKey] = set()
        self._failed = 0

    def add(self, key: HookKey) -> None:
        """Count `key` as attempted (once)."""
        with self._lock:
            if key not in self._recorded and key not in self._pending:
                self._pending.add(key)

    def record(self, key: HookKey, *, failed: bool) -> None:
        """Record the outcome of `key` (added first if it was not); a second outcome is ignored."""
        with self._lock:
            if key in self._recorded:
                return
            self._pending.discard(key)
            self._recorded[key] = failed
            if failed:
                self._failed += 1

    @property
    def attempted(self) -> int:
        """How many hooks were attempted."""
        with self._lock:
            return len(self._recorded) + len(self._pending)

    @property
    def failed(self) -> int:
        """How many hooks failed."""
        with self._lock:
            return self._failed

    def stat(self) -> tuple[int, int]:
        """``(attempted, failed)``, read together."""
        with self._lock:
            return len(self._recorded) + len(self._pending), self._failed

    def is_complete(self) -> bool:
        """Whether every attempted hook has an outcome."""
        with self._lock:
            return not self._pending

    def hook_status(self) -> HookStatus:
        """The counts as ``status.hookStatus`` (zeros omitted, as Velero's omitempty does)."""
        attempted, failed = self.stat()
        return HookStatus(hooks_attempted=attempted or None, hooks_failed=failed or None)
