"""Waiting out another process's repository lock instead of failing."""

from __future__ import annotations

import pytest
from tests.runasync import run_async

from strongroom.volumes.restic import ResticError, is_locked, while_locked


@run_async
async def test_a_locked_repository_is_tried_again_until_it_is_free() -> None:
    calls = 0

    async def backup() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ResticError(
                "unable to create lock in backend: repository is already locked exclusively by PID 7"
            )
        return "snapshot"

    assert await while_locked(backup, what="backup", first_delay=0.01) == "snapshot"
    assert calls == 3


@run_async
async def test_other_errors_and_a_lock_that_outlasts_the_timeout_are_raised() -> None:
    async def broken() -> None:
        raise ResticError("wrong password or no key found")

    with pytest.raises(ResticError, match="wrong password"):
        await while_locked(broken, what="backup", first_delay=0.01)

    async def locked() -> None:
        raise ResticError("repository is already locked by PID 9")

    with pytest.raises(ResticError, match="already locked"):
        await while_locked(locked, what="backup", timeout=0.05, first_delay=0.02)
    assert is_locked(ResticError("repository is already locked by PID 9"))
    assert not is_locked(ValueError("already locked"))


@run_async
async def test_stale_locks_are_removed_once_before_waiting() -> None:
    events: list[str] = []

    async def backup() -> str:
        events.append("backup")
        if events.count("unlock") == 0:
            raise ResticError("repository is already locked by PID 4 on this host")
        return "done"

    async def unlock() -> None:
        events.append("unlock")

    assert await while_locked(backup, what="backup", unlock=unlock, first_delay=5.0) == "done"
    # No waiting: the lock was a dead process's, removed and retried at once.
    assert events == ["backup", "unlock", "backup"]
