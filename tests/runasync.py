"""Run async tests without an asyncio pytest plugin: each test gets a fresh event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

P = ParamSpec("P")

_TLS_SHUTDOWN_GRACE = 0.05


def run_async(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test in a fresh event loop (the project has no asyncio pytest plugin)."""

    @functools.wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        async def main() -> None:
            try:
                await test(*args, **kwargs)
            finally:
                # Closed HTTPS sessions finish their TLS shutdown in the next loop turns (aiohttp's
                # graceful-shutdown advice); closing the loop first leaves transports for the
                # garbage collector to report, later, in whichever test is running then.
                await asyncio.sleep(_TLS_SHUTDOWN_GRACE)

        asyncio.run(main())

    return wrapper
