"""A program that exits right after a storage call must exit cleanly (it used to abort, exit code 134).

obstore delivers results from its own threads; without the grace pause at
exit, one of them could still want the GIL while CPython finalizes, and the
process died with SIGABRT in up to half of the short runs on this machine,
depending on timing. The check is statistical (it passes by luck now and
then without the fix), so it runs the probe several times.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROBE = """
import asyncio, sys
from strongroom.storage import LocalObjectStore

async def main():
    store = LocalObjectStore(sys.argv[1])
    await store.put("k", b"v")
    await store.head("k")

asyncio.run(main())
"""
RUNS = 12


def test_a_program_ending_right_after_a_storage_call_exits_cleanly(tmp_path: Path) -> None:
    # A script file with its output discarded: the setting in which the abort showed most often.
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)

    def run(index: int) -> int:
        directory = tmp_path / str(index)
        directory.mkdir()
        command = [sys.executable, str(probe), str(directory)]
        return subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False
        ).returncode

    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(run, range(RUNS)))
    assert codes == [0] * RUNS
