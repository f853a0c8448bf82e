"""What Backups and Restores have in common in the server: a queue, a claim, progress and an ending.

Both are "runs": a resource in phase New (or none) waits for a free slot, is
re-read (it may have been handled or deleted meanwhile), validated, claimed
(InProgress, with a write conditional on the version read, so that no two
servers run it), run by the engine with its progress written into the
status, and finished with a final status, a log line and an Event. The
controllers of each kind supply the validation and the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from strongroom.controller.context import ServerContext, phase_of
from strongroom.errors import StrongroomError
from strongroom.model.resources import ApiResource
from strongroom.model.velero import format_timestamp

__all__ = ["PENDING", "ProgressWriter", "RunController"]

_log = logging.getLogger(__name__)

PENDING: Final = ("", "New")


class ProgressWriter:
    """Writes a run's progress into the resource's status, at most once per interval."""

    def __init__(
        self,
        ctx: ServerContext,
        res: ApiResource,
        name: str,
        fields: tuple[str, str],
        *,
        interval: float | None = None,
    ) -> None:
        self._ctx = ctx
        self._res = res
        self._name = name
        self._fields = fields
        self._interval = ctx.config.progress_interval.total_seconds() if interval is None else interval
        self._last = 0.0
        self._pending: asyncio.Task[Any] | None = None
        self._loop = asyncio.get_running_loop()

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)

    def update(self, done: int, total: int) -> None:
        # Called from the engine (possibly another thread); writes never block the run.
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        done_field, total_field = self._fields
        status = {"progress": {total_field: total, done_field: done}}
        self._loop.call_soon_threadsafe(self._start, status)

    def _start(self, status: dict[str, Any]) -> None:
        if self._pending is not None and not self._pending.done():
            return
        self._pending = asyncio.ensure_future(self._write(status))

    async def _write(self, status: dict[str, Any]) -> None:
        try:
            await self._ctx.patch_status(self._res, self._name, status)
        except StrongroomError as exc:
            _log.debug("progress of %s not written: %s", self._name, exc.message)

    async def settle(self) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)


class RunController(ABC):
    """The lifecycle of one kind of run; subclasses validate and run."""

    # "backup" or "restore": in messages, log fields and the recovery reason.
    noun: str

    def __init__(self, ctx: ServerContext, res: ApiResource, concurrency: int) -> None:
        self._ctx = ctx
        self._res = res
        self._slots = asyncio.Semaphore(max(1, concurrency))

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        if phase_of(body) not in PENDING:
            return
        name = str(body["metadata"]["name"])
        async with self._slots:
            # Re-read: while this one waited its turn it may have been processed or deleted.
            current = await self._ctx.get(self._res, name)
            if current is None or phase_of(current) not in PENDING:
                return
            try:
                await self._process(current)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed_unexpectedly(name, exc)

    async def _failed_unexpectedly(self, name: str, exc: Exception) -> None:
        """A failure the engine did not expect (a bug, a full disk): never leave the run InProgress.

        Before the claim the run is still New and the caller's retry takes it
        up again; once claimed, it is finished as Failed with the reason.
        """
        current = await self._ctx.get(self._res, name)
        if current is None or phase_of(current) != "InProgress":
            raise exc
        _log.error("%s %s failed unexpectedly", self.noun, name, exc_info=exc, extra={self.noun: name})
        reason = exc.message if isinstance(exc, StrongroomError) else f"{type(exc).__name__}: {exc}"
        await self._finish(
            name,
            {
                "phase": "Failed",
                "failureReason": f"unexpected error: {reason}",
                "completionTimestamp": format_timestamp(self._ctx.clock()),
            },
        )

    @abstractmethod
    async def _process(self, obj: dict[str, Any]) -> None: ...

    async def _fail_validation(
        self, name: str, errors: list[str], *, metadata: dict[str, Any] | None = None, **status: Any
    ) -> None:
        _log.warning("%s %s failed validation: %s", self.noun, name, "; ".join(errors))
        patched = await self._ctx.write(
            self._res,
            name,
            metadata=metadata,
            status={"phase": "FailedValidation", "validationErrors": errors, **status},
        )
        self._ctx.event(patched, "Warning", "FailedValidation", "; ".join(errors))

    async def _claim(
        self, obj: Mapping[str, Any], message: str, status: dict[str, Any], **changes: Any
    ) -> dict[str, Any]:
        """Mark the run InProgress, conditional on the version read; a 409 means another server has it."""
        name = str(obj["metadata"]["name"])
        claimed = await self._ctx.write(
            self._res,
            name,
            status={"phase": "InProgress", **status},
            resource_version=str(obj["metadata"]["resourceVersion"]),
            **changes,
        )
        self._ctx.event(claimed, "Normal", "InProgress", message)
        _log.info("%s %s started", self.noun, name, extra={self.noun: name})
        return claimed

    @staticmethod
    def failed(exc: StrongroomError, now: datetime) -> dict[str, Any]:
        """The final status of a run the engine could not carry out."""
        return {"phase": "Failed", "failureReason": exc.message, "completionTimestamp": format_timestamp(now)}

    async def _finish(self, name: str, final: dict[str, Any]) -> str:
        """Write the final status, log and record it; returns the phase."""
        final.setdefault("errors", 0)
        final.setdefault("warnings", 0)
        phase = str(final.get("phase"))
        written = await self._ctx.patch_status(self._res, name, final)
        level = logging.INFO if phase == "Completed" else logging.WARNING
        _log.log(level, "%s %s finished: %s", self.noun, name, phase, extra={self.noun: name, "phase": phase})
        if written is not None:
            reason = final.get("failureReason")
            self._ctx.event(
                written,
                "Normal" if phase == "Completed" else "Warning",
                phase,
                f"{self.noun} {phase}" + (f": {reason}" if reason else ""),
            )
        return phase

    async def _mark_failed_after_restart(self, obj: Mapping[str, Any]) -> None:
        """Velero's rule for a run a dead server left InProgress."""
        name = str(obj["metadata"]["name"])
        reason = (
            f'found a {self.noun} with status "InProgress" during the server starting, mark it as "Failed"'
        )
        await self._ctx.patch_status(
            self._res,
            name,
            {
                "phase": "Failed",
                "failureReason": reason,
                "completionTimestamp": format_timestamp(self._ctx.clock()),
            },
        )
        _log.warning("%s %s: %s", self.noun, name, reason)
        self._ctx.event(obj, "Warning", "Failed", reason)
