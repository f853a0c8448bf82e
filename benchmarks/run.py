"""One command for every benchmark: `python -m benchmarks.run [--quick] [--only NAME] [--write-docs]`.

Benchmarks are plain modules listed in BENCHMARKS, each with
`run(options: Options) -> Result`; a new one (backup, restore, etcd
snapshots) plugs in by adding a line there. The runner prints one table per
benchmark and, with --write-docs, rewrites docs/performance.md so the
repository always carries the figures of the latest full run together with
the machine and the command that produced them. Timing never goes into the
test suite: on shared CI machines it would only make tests flaky.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.common import Options, Result, fmt_rate, fmt_ratio

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    summary: str


# The registry: add a line here and the benchmark runs with all the others and lands in the docs.
BENCHMARKS: list[Benchmark] = [
    Benchmark(
        "sandbox_api",
        "benchmarks.sandbox_api",
        "ConfigMap create, list and watch through the sandbox API server vs. directly on etcd",
    ),
    Benchmark(
        "sandbox_startup",
        "benchmarks.sandbox_startup",
        "Seconds until a new or restarted sandbox is ready, vs. etcd alone",
    ),
    Benchmark(
        "backup_restore",
        "benchmarks.backup_restore",
        "Backup of N ConfigMaps vs. one paginated LIST; restore vs. kubectl create; backup peak RSS",
    ),
    Benchmark(
        "server",
        "benchmarks.server",
        "Backup and Restore resources through `strongroom server` vs. the library in-process; its RSS, start-up",
    ),
    Benchmark(
        "volume_backup",
        "benchmarks.volume_backup",
        "File-system backup of a 1 GiB mixed volume through the server and node agent vs. restic directly",
    ),
    Benchmark(
        "object_stores",
        "benchmarks.object_stores",
        "One large and 10,000 small objects up and down through each store backend vs. its provider's SDK",
    ),
    Benchmark(
        "etcd_snapshot",
        "benchmarks.etcd_snapshot",
        "etcd snapshot save (directory, S3), verify and restore of a 512 MB database vs. etcdctl/etcdutl",
    ),
    Benchmark(
        "images",
        "benchmarks.images",
        "Backup of a 200 MB internal image into the location's registry (moto S3) vs. a plain skopeo copy",
    ),
]


def _load(benchmark: Benchmark) -> Callable[[Options], Result]:
    module = importlib.import_module(benchmark.module)
    run: Callable[[Options], Result] = module.run
    return run


# ----------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    """The facts a reader needs to compare figures across runs."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "nproc": str(usable),
        "CPU": cpu,
        "Memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        # Other work on the machine skews every figure; the phase tables show it per phase too.
        "Load average at start (1, 5, 15 min)": ", ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


def command_line(argv: list[str]) -> str:
    python = Path(sys.executable)
    shown = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else "python"
    return " ".join([shown, "-m", "benchmarks.run", *(shlex.quote(a) for a in argv)])


# --------------------------------------------------------------- rendering


def numeric_columns(headers: list[str], rows: list[list[str]]) -> list[bool]:
    """Columns of figures (right-aligned) as opposed to text (left-aligned)."""

    def figure(cell: str) -> bool:
        return cell in ("—", "failed", "") or cell.lstrip("-")[:1].isdigit()

    return [bool(rows) and all(figure(row[i]) for row in rows) for i in range(len(headers))]


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    right = numeric_columns(headers, rows)

    def line(cells: list[str]) -> str:
        out = [
            cell.rjust(width) if numeric else cell.ljust(width)
            for cell, width, numeric in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    align = ["---:" if numeric else "---" for numeric in numeric_columns(headers, rows)]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


MAIN_HEADERS = ["Operation", "Unit", "Ours", "Floor", "Ours ÷ floor", "Range", "Note"]


def main_rows(result: Result) -> list[list[str]]:
    return [
        [
            row.operation,
            row.unit,
            fmt_rate(row.ours),
            "—" if row.floor is None else fmt_rate(row.floor),
            fmt_ratio(row.ratio),
            row.spread,
            row.note,
        ]
        for row in result.rows
    ]


def print_result(result: Result) -> None:
    print(f"\n== {result.name}: {result.title} ({result.seconds:.0f} s)")
    print("   " + ", ".join(f"{k}: {v}" for k, v in result.parameters.items()))
    print()
    print(text_table(MAIN_HEADERS, main_rows(result)))
    for table in result.tables:
        print(f"\n{table.title}")
        print(text_table(table.headers, table.rows))
    if result.problems:
        print("\nProblems:")
        for problem in result.problems:
            print(f"  - {problem}")


def render_docs(
    results: list[Result], *, info: dict[str, str], command: str, started: dt.datetime, seconds: float
) -> str:
    parts = [
        "# Performance",
        "",
        "<!-- Generated by `python -m benchmarks.run --write-docs`; edit benchmarks/, not this file. -->",
        "",
        "The latest figures of strongroom's benchmarks. Each benchmark measures our code and the",
        "floor beneath it (the same work done directly on the layer we build on) in the same run on",
        "the same machine, and reports the throughput ratio **ours ÷ floor**: 1.0 would mean our layer",
        "costs nothing, 0.25 that it runs at a quarter of the floor's rate. Compare ratios across runs",
        "and machines; the absolute figures are only meaningful on the machine below.",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')} (whole run {seconds:.0f} s)",
        f"- Command: `{command}`",
        *(f"- {key}: {value}" for key, value in info.items()),
        "",
    ]
    for result in results:
        parts += [f"## {result.name}: {result.title}", ""]
        parts += [", ".join(f"{k}: {v}" for k, v in result.parameters.items()) + ".", ""]
        parts += [markdown_table(MAIN_HEADERS, main_rows(result)), ""]
        for table in result.tables:
            parts += [f"**{table.title}**", "", markdown_table(table.headers, table.rows), ""]
        if result.problems:
            parts += ["**Problems found in this run**", ""]
            parts += [f"- {problem}" for problem in result.problems]
            parts += [""]
        if result.method:
            parts += [result.method.strip(), ""]
    return "\n".join(parts).rstrip() + "\n"


# -------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Run strongroom's benchmarks and print their figures.",
        epilog="benchmarks: " + "; ".join(f"{b.name} ({b.summary})" for b in BENCHMARKS),
    )
    parser.add_argument(
        "--quick", action="store_true", help="small smoke run (1,000 objects instead of 10,000)"
    )
    parser.add_argument(
        "--only", metavar="NAME", choices=[b.name for b in BENCHMARKS], help="run only this benchmark"
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite docs/performance.md with this run's figures"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="run the system under test under cProfile and write the profiles to DIR (skews the figures)",
    )
    args = parser.parse_args(argv)
    if args.write_docs and (args.quick or args.only or args.profile):
        parser.error("--write-docs records full runs only: drop --quick, --only and --profile")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    options = Options(quick=args.quick, profile_dir=args.profile.resolve() if args.profile else None)
    selected = [b for b in BENCHMARKS if args.only in (None, b.name)]
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    info = machine()
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    results: list[Result] = []
    for benchmark in selected:
        print(f"\nrunning {benchmark.name}: {benchmark.summary}", flush=True)
        begun = time.monotonic()
        result = _load(benchmark)(options)
        result.seconds = time.monotonic() - begun
        results.append(result)
        print_result(result)
    seconds = time.monotonic() - t0
    print(f"\nall benchmarks: {seconds:.0f} s")
    if args.write_docs:
        DOCS.write_text(
            render_docs(results, info=info, command=command_line(argv), started=started, seconds=seconds)
        )
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
