"""What every benchmark hands back to `benchmarks.run`, so the runner can print and document any of them.

A benchmark's headline is a list of `Row`s: our throughput next to the floor's,
measured in the same run on the same machine, and their ratio. Absolute
figures alone say little on a shared 2-core box; the ratio to the floor says
how much our layer costs and survives a change of machine far better.
Supporting tables (CPU per phase, latencies, memory) explain the ratios.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Options:
    """What the command line asks of every benchmark."""

    quick: bool = False
    # Where to write a cProfile of the system under test, for benchmarks that can (figures are then skewed).
    profile_dir: Path | None = None


@dataclass(frozen=True)
class Row:
    """One operation: our rate and the floor's, in the same unit (higher is better).

    With several rounds, `ours` and `floor` are medians and `ratios` holds each
    round's own ours ÷ floor (a ratio is only ever taken within one run).
    """

    operation: str
    unit: str
    ours: float | None
    floor: float | None = None
    note: str = ""
    ratios: tuple[float, ...] = ()

    @property
    def ratio(self) -> float | None:
        """ours ÷ floor: below 1 means slower than the floor (a throughput ratio)."""
        if self.ratios:
            return statistics.median(self.ratios)
        if self.ours is None or not self.floor:
            return None
        return self.ours / self.floor

    @property
    def spread(self) -> str:
        """The lowest and highest per-round ratio, when there were several rounds."""
        if len(self.ratios) < 2:
            return "—"
        return f"{min(self.ratios):.3f}-{max(self.ratios):.3f}"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def combine_rows(rounds: list[list[Row]]) -> list[Row]:
    """Rows of several rounds of the same benchmark: median rates, every round's own ratio."""
    combined = []
    for same in zip(*rounds, strict=True):
        first = same[0]
        ratios = tuple(r for r in (row.ratio for row in same) if r is not None)
        combined.append(
            Row(
                first.operation,
                first.unit,
                _median([row.ours for row in same]),
                _median([row.floor for row in same]),
                first.note,
                ratios if len(same) > 1 else (),
            )
        )
    return combined


@dataclass(frozen=True)
class Table:
    """A supporting table: a title, column headers and rows of already formatted cells."""

    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Result:
    """Everything one benchmark module measured in one run."""

    name: str
    title: str
    parameters: dict[str, str]
    rows: list[Row]
    tables: list[Table] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Markdown for docs/performance.md: how the figures were taken and how to read them.
    method: str = ""
    seconds: float = 0.0


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "failed"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class RssSampler:
    """Samples the resident memory of process trees in a background thread, keeping peaks per phase.

    Each group is a root pid; its descendants count towards it unless they are
    the root of another group (so etcd, a child of the sandbox, is counted apart).
    """

    def __init__(self, groups: dict[str, int], interval: float = 0.05) -> None:
        self.groups = groups
        self.interval = interval
        self.phase = "start"
        self.peak: dict[str, int] = dict.fromkeys(groups, 0)
        self.peak_phase: dict[str, str] = dict.fromkeys(groups, "")
        # phase -> group -> peak RSS seen while that phase ran
        self.phase_peak: dict[str, dict[str, int]] = {}
        self.last: dict[str, int] = dict.fromkeys(groups, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> dict[str, int]:
        """Current RSS in bytes of every group."""
        roots = {pid: name for name, pid in self.groups.items()}
        totals = dict.fromkeys(self.groups, 0)
        for name, pid in self.groups.items():
            with contextlib.suppress(psutil.Error):
                totals[name] += _tree_rss(psutil.Process(pid), roots, name)
        return totals

    def _run(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            per_phase = self.phase_peak.setdefault(phase, dict.fromkeys(self.groups, 0))
            for name, rss in self.sample().items():
                self.last[name] = rss
                per_phase[name] = max(per_phase[name], rss)
                if rss > self.peak[name]:
                    self.peak[name] = rss
                    self.peak_phase[name] = phase
            self._stop.wait(self.interval)


def _tree_rss(proc: psutil.Process, roots: dict[int, str], group: str) -> int:
    total = 0
    with contextlib.suppress(psutil.Error):
        total += int(proc.memory_info().rss)
        for child in proc.children():
            if roots.get(child.pid, group) != group:
                continue  # another group's root: counted there
            total += _tree_rss(child, roots, group)
    return total


def cpu_seconds(pid: int, exclude: set[int] | None = None) -> float:
    """User + system CPU time of a process and its descendants (minus `exclude` subtrees)."""
    exclude = exclude or set()
    total = 0.0
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total += times.user + times.system
        for child in proc.children():
            if child.pid not in exclude:
                total += cpu_seconds(child.pid, exclude)
    return total


@dataclass
class Phase:
    """Wall time and CPU seconds per process of one step of a benchmark run.

    ``client_cpu`` is the benchmark's own process (and the subprocesses it
    waited for); ``other_cpu`` is everything else the machine ran meanwhile,
    where a disturbed figure shows.
    """

    name: str
    objects: int = 0
    wall: float = 0.0
    server_cpu: float = 0.0
    etcd_cpu: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0


def fmt_seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def fmt_factor(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def fmt_mb(value: int | None) -> str:
    """Bytes as MB (10^6), the unit of the memory tables."""
    return "—" if value is None else f"{value / 1e6:,.0f}"


def per_second(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds else None
