"""Backup and restore of one namespace of N ConfigMaps, next to the floor beneath each.

Why: a backup is, at heart, a paginated LIST of everything it covers; all we
add (filters, the tarball, gzip, checksums, the log, the upload) should cost
little next to that LIST. So the backup's floor is one LIST of the same
objects in pages of 500, following the continue tokens and decoding every
page, through the same kube client strongroom uses, in the same process and
the same run (the issue's target: a backup takes at most 1.3 times the
LIST's time). A restore has no such floor (it is N creates, bound by the API
server), so it is compared with the tool people would otherwise use,
``kubectl create -f`` of the same objects (the issue's target: at least 5
times faster).

The library is called directly for the timed backup and restore, so that the
interpreter's start-up is not counted; the CLI runs once per size in a
subprocess, for its wall time and its peak RSS (the issue's target: at most
300 MB at 50,000 objects), sampled with psutil so that this process's memory
is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

from benchmarks.common import (
    Options,
    Phase,
    Result,
    Row,
    RssSampler,
    Table,
    fmt_factor,
    fmt_mb,
    fmt_rate,
    fmt_seconds,
    per_second,
)
from benchmarks.sandbox_api import (
    Api,
    Procs,
    etcd_version,
    filesystem_of,
    server_log_problems,
    write_all,
)
from strongroom.archive import decode_resource_list
from strongroom.backup.request import BackupFlags, build_backup, plan_backup
from strongroom.backup.runner import BackupOutcome, BackupRunner
from strongroom.errors import ObjectNotFound
from strongroom.kube import KubeClient
from strongroom.model.resources import ApiResource
from strongroom.restore.request import RestoreFlags, build_restore, restore_options
from strongroom.restore.runner import RestoreOutcome, RestoreRunner
from strongroom.sandbox import runner
from strongroom.storage import Layout, open_store, validate_top_level
from strongroom.storage.catalog import BackupCatalog

NAME = "backup_restore"
TITLE = "Backup and restore of one namespace of ConfigMaps vs. a paginated LIST and kubectl create"

FULL_SIZES = (10_000, 50_000)
QUICK_SIZES = (2_000, 5_000)
KUBECTL_MAX_FULL = 10_000  # kubectl creates one object at a time: at 50,000 it would take many minutes
ROUNDS = 3  # floor LIST and library backup, alternating; figures are medians, each ratio from one round
PAGE_SIZE = 500
CONCURRENCY = 32  # POSTs in flight while filling the namespace (not measured)
NAMESPACE = "bench-backup"
NAME_PREFIX = "cm-"
PAYLOAD_BYTES = 1024  # of data per ConfigMap
LOCATION = "default"
BACKUP_TARGET = 1.3  # backup time ÷ LIST time, at most
RESTORE_TARGET = 0.2  # restore time ÷ kubectl create time, at most
RSS_TARGET_MB = 300  # peak RSS of `strongroom backup create` at the largest size, at most
RSS_TARGET_OBJECTS = 50_000
NAMESPACE_GONE_TIMEOUT = 900.0
SUBPROCESS_TIMEOUT = 1800.0


def manifest(index: int) -> dict[str, Any]:
    """The index-th ConfigMap: 1 KiB of data and three labels.

    The data is hex text from an extendable hash, so it compresses about as
    badly as text can (to ~55 %): the tarball's gzip gets no free ride from
    repeated bytes (most real configuration compresses better).
    """
    name = f"{NAME_PREFIX}{index:05d}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "strongroom-bench",
                "app.kubernetes.io/part-of": "backup-restore",
                "bench/index": str(index),
            },
        },
        "data": {
            "payload": hashlib.shake_256(name.encode()).hexdigest((PAYLOAD_BYTES - 16) // 2),
            "index": f"{index:016d}",
        },
    }


# ------------------------------------------------------------------ measuring


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Meter:
    procs: Procs
    phases: list[Phase] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str, objects: int) -> Iterator[Phase]:
        phase = Phase(name, objects)
        server0, etcd0, client0, machine0 = self.procs.cpu()
        children0 = _children_cpu()
        begun = time.perf_counter()
        try:
            yield phase
        finally:
            phase.wall = time.perf_counter() - begun
            server1, etcd1, client1, machine1 = self.procs.cpu()
            phase.server_cpu, phase.etcd_cpu = server1 - server0, etcd1 - etcd0
            phase.client_cpu = client1 - client0 + _children_cpu() - children0
            ours = phase.server_cpu + phase.etcd_cpu + phase.client_cpu
            phase.other_cpu = max(0.0, machine1 - machine0 - ours)
            self.phases.append(phase)


class _ProfiledExecutor(ThreadPoolExecutor):
    """The loop's default executor, with a cProfile per worker thread: the tarball is written in one."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="profiled")
        self.profiles: list[cProfile.Profile] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def profiled() -> Any:
            profile = getattr(self._local, "profile", None)
            if profile is None:
                profile = self._local.profile = cProfile.Profile()
                with self._lock:
                    self.profiles.append(profile)
            profile.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                profile.disable()

        return super().submit(profiled)


class Profiler:
    """cProfile of the event loop's thread and the executor's threads, written to one file per run."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @contextlib.asynccontextmanager
    async def run(self, label: str) -> Any:
        if self.directory is None:
            yield
            return
        executor = _ProfiledExecutor()
        asyncio.get_running_loop().set_default_executor(executor)
        main = cProfile.Profile()
        main.enable()
        try:
            yield
        finally:
            main.disable()
            # A fresh default executor for what follows (aiohttp hops to it for every request).
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
            executor.shutdown(wait=True)
            stats = pstats.Stats(main)
            for profile in executor.profiles:
                stats.add(profile)
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{label}.prof"
            stats.dump_stats(str(path))
            out = io.StringIO()
            summary = pstats.Stats(str(path), stream=out)
            summary.sort_stats(pstats.SortKey.TIME).print_stats(40)
            summary.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(40)
            path.with_suffix(".txt").write_text(out.getvalue())
            print(f"  profile: {path} (summary in {path.with_suffix('.txt')})", flush=True)


# ------------------------------------------------------------------- figures


@dataclass
class Figures:
    """Everything measured at one size."""

    objects: int
    list_seconds: list[float] = field(default_factory=list)
    backup_seconds: list[float] = field(default_factory=list)
    backup_items: int = 0
    backup_bytes: int = 0
    cli_seconds: float | None = None
    cli_startup_seconds: float | None = None
    cli_peak_rss: int | None = None
    restore_seconds: float | None = None
    restore_items: int = 0
    kubectl_seconds: float | None = None
    delete_seconds: list[float] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def list_median(self) -> float | None:
        return statistics.median(self.list_seconds) if self.list_seconds else None

    @property
    def backup_median(self) -> float | None:
        return statistics.median(self.backup_seconds) if self.backup_seconds else None

    @property
    def backup_ratios(self) -> list[float]:
        """Backup time ÷ LIST time, one per round (each from the same round)."""
        return [b / f for f, b in zip(self.list_seconds, self.backup_seconds, strict=False) if f]

    @property
    def restore_ratio(self) -> float | None:
        """Restore time ÷ kubectl create time."""
        if self.restore_seconds is None or not self.kubectl_seconds:
            return None
        return self.restore_seconds / self.kubectl_seconds


# ------------------------------------------------------------------ the steps


async def fill(api: Api, objects: int, figures: Figures) -> None:
    """The namespace and its N ConfigMaps, created as fast as the API server takes them."""
    await api.create_namespace(NAMESPACE)
    bodies = [json.dumps(manifest(i), separators=(",", ":")).encode() for i in range(objects)]
    run = await write_all(objects, lambda i: api.create(bodies[i], NAMESPACE), CONCURRENCY)
    if run.errors:
        raise RuntimeError(f"filling {NAMESPACE}: {len(run.errors)} creates failed; first: {run.errors[0]}")


async def floor_list(kube: KubeClient, configmaps: ApiResource) -> int:
    """The floor: one paginated LIST of the namespace's ConfigMaps, every page decoded."""
    count = 0
    async for page in kube.list_pages(configmaps, namespace=NAMESPACE, limit=PAGE_SIZE):
        count += len(page)
    return count


async def library_backup(kube: KubeClient, catalog: BackupCatalog, name: str) -> BackupOutcome:
    """What `strongroom backup create NAME --include-namespaces NS` does, without the process around it."""
    await validate_top_level(catalog.store, catalog.layout)
    if await catalog.backup_exists(name):
        raise RuntimeError(f"backup {name} already exists")
    backup, ttl = build_backup(BackupFlags(name=name, include_namespaces=[NAMESPACE]), LOCATION)
    plan = await plan_backup(kube, backup)
    return await BackupRunner(kube, catalog).run(
        backup, plan.scope, plan.resources, ttl=ttl, cluster_version=plan.cluster_version
    )


async def backup_namespaces(catalog: BackupCatalog, backup: str) -> list[str]:
    """The namespaces a backup holds, from its resource list (as `strongroom restore create` reads them)."""
    try:
        listed = decode_resource_list(await catalog.read_file(catalog.layout.backup_resource_list(backup)))
    except ObjectNotFound:
        return []
    return sorted(
        {entry.partition("/")[0] for entries in listed.values() for entry in entries if "/" in entry}
    )


async def library_restore(kube: KubeClient, catalog: BackupCatalog, backup: str) -> RestoreOutcome:
    """What `strongroom restore create --from-backup BACKUP` does, without the process around it."""
    restore = build_restore(RestoreFlags(name=f"{backup}-restore", from_backup=backup), datetime.now(UTC))
    restorer = RestoreRunner(kube, catalog)
    await restorer.check_backup(backup)
    discovery = await kube.discover()
    options = restore_options(discovery, restore, await backup_namespaces(catalog, backup))
    return await restorer.run(restore, options, discovery=discovery)


async def delete_namespace(api: Api) -> None:
    """Delete the namespace and wait until the API server no longer has it (its items drained)."""
    path = f"/api/v1/namespaces/{NAMESPACE}"
    status, raw = await api.request("DELETE", path)
    if status not in (200, 202):
        raise RuntimeError(f"DELETE {path} -> {status} {raw[:300]!r}")
    deadline = time.monotonic() + NAMESPACE_GONE_TIMEOUT
    while time.monotonic() < deadline:
        status, _ = await api.request("GET", path)
        if status == 404:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"namespace {NAMESPACE} still exists {NAMESPACE_GONE_TIMEOUT:.0f} s after DELETE")


def stored_bytes(directory: Path, backup: str) -> int:
    return sum(path.stat().st_size for path in directory.rglob(f"{backup}.tar.gz"))


def cli_backup(state: runner.SandboxState, workdir: Path, name: str) -> tuple[float, int, int, str]:
    """`strongroom backup create` in its own process: wall seconds, peak RSS, exit code and output."""
    config = workdir / "cli-config"  # no locations.yaml: the built-in default stores under config/storage
    env = {**os.environ, "STRONGROOM_CONFIG_DIR": str(config)}
    args = [sys.executable, "-m", "strongroom", "backup", "create", name]
    args += ["--kubeconfig", state.kubeconfig, "--include-namespaces", NAMESPACE]
    with (workdir / "cli.out").open("w+b") as out:
        begun = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        with RssSampler({"cli": proc.pid}, interval=0.02) as sampler:
            code = proc.wait(timeout=SUBPROCESS_TIMEOUT)
        seconds = time.perf_counter() - begun
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    return seconds, sampler.peak["cli"], code, text


def cli_startup(workdir: Path) -> float:
    """Wall seconds of `strongroom backup create --help`: the interpreter and the CLI's imports."""
    env = {**os.environ, "STRONGROOM_CONFIG_DIR": str(workdir / "cli-config")}
    begun = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "strongroom", "backup", "create", "--help"],
        capture_output=True,
        env=env,
        check=True,
        timeout=120,
    )
    return time.perf_counter() - begun


def kubectl(state: runner.SandboxState, workdir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", state.kubeconfig, "--cache-dir", str(workdir / "kubectl-cache"), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def kubectl_version() -> str:
    try:
        out = subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"], capture_output=True, check=False, timeout=30
        ).stdout
        return str(json.loads(out)["clientVersion"]["gitVersion"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return "unknown"


def write_manifests(path: Path, objects: int) -> None:
    """The namespace and the very manifests that were POSTed, as one multi-document YAML file."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    with path.open("w", encoding="utf-8") as out:
        yaml.dump_all(
            [namespace, *(manifest(i) for i in range(objects))], out, Dumper=dumper, sort_keys=False
        )


# -------------------------------------------------------------------- one size


async def measure_library(
    state: runner.SandboxState, workdir: Path, figures: Figures, meter: Meter, profiler: Profiler
) -> str:
    """Fill, then LIST and back up in alternation; returns the name of a backup to restore from."""
    objects = figures.objects
    api = Api(state)
    kube = await KubeClient.from_kubeconfig(state.kubeconfig)
    storage = workdir / "storage"
    storage.mkdir()
    catalog = BackupCatalog(open_store("local", str(storage)), Layout())
    try:
        with meter.phase(f"fill: create {objects:,} ConfigMaps ({CONCURRENCY} in flight)", objects):
            await fill(api, objects, figures)
        configmaps = (await kube.discover()).find("", "configmaps")
        if configmaps is None:
            raise RuntimeError("the sandbox does not serve configmaps")
        expected = objects + 1  # and the namespace's kube-root-ca.crt
        with meter.phase("warm-up LIST (not measured)", expected):
            await floor_list(kube, configmaps)
        name = ""
        for index in range(1, ROUNDS + 1):
            with meter.phase(f"floor: LIST in pages of {PAGE_SIZE}, round {index}", expected):
                begun = time.perf_counter()
                listed = await floor_list(kube, configmaps)
                figures.list_seconds.append(time.perf_counter() - begun)
            if listed != expected:
                figures.problems.append(
                    f"{objects:,}: the LIST returned {listed:,} ConfigMaps, not {expected:,}"
                )
            name = f"bench-{objects}-{index}"
            with meter.phase(f"ours: backup (library), round {index}", expected):
                begun = time.perf_counter()
                async with profiler.run(f"backup-{objects}-round{index}"):
                    outcome = await library_backup(kube, catalog, name)
                figures.backup_seconds.append(time.perf_counter() - begun)
            progress = outcome.backup.get("status", {}).get("progress") or {}
            figures.backup_items = int(progress.get("itemsBackedUp", 0))
            if outcome.phase != "Completed" or not outcome.stored or figures.backup_items < expected:
                figures.problems.append(
                    f"{objects:,}: backup {name} ended {outcome.phase} (stored: {outcome.stored}) "
                    f"with {figures.backup_items:,} items; status {outcome.backup.get('status')}"
                )
            print(
                f"  {objects:,} objects, round {index}/{ROUNDS}: LIST {figures.list_seconds[-1]:.2f} s, "
                f"backup {figures.backup_seconds[-1]:.2f} s",
                flush=True,
            )
        figures.backup_bytes = stored_bytes(storage, name)
        return name
    finally:
        await kube.close()
        await api.close()


async def measure_restore(
    state: runner.SandboxState,
    workdir: Path,
    backup: str,
    figures: Figures,
    meter: Meter,
    profiler: Profiler,
    *,
    delete_after: bool,
) -> None:
    """Delete the namespace, restore it from `backup`, check it; delete it again for kubectl if asked."""
    objects = figures.objects
    api = Api(state)
    kube = await KubeClient.from_kubeconfig(state.kubeconfig)
    catalog = BackupCatalog(open_store("local", str(workdir / "storage")), Layout())
    try:
        with meter.phase(f"delete namespace of {objects:,} and wait until gone", objects) as phase:
            await delete_namespace(api)
        figures.delete_seconds.append(phase.wall)
        with meter.phase("ours: restore (library)", objects) as phase:
            async with profiler.run(f"restore-{objects}"):
                outcome = await library_restore(kube, catalog, backup)
        figures.restore_seconds = phase.wall
        progress = outcome.restore.get("status", {}).get("progress") or {}
        figures.restore_items = int(progress.get("itemsRestored", 0))
        configmaps = (await kube.discover()).find("", "configmaps")
        assert configmaps is not None
        present = await floor_list(kube, configmaps)
        if outcome.phase != "Completed" or present != objects + 1:
            figures.problems.append(
                f"{objects:,}: restore ended {outcome.phase} with {figures.restore_items:,} items restored; "
                f"{present:,} ConfigMaps in the namespace afterwards (expected {objects + 1:,}); "
                f"status {outcome.restore.get('status')}"
            )
        print(f"  {objects:,} objects: restore {figures.restore_seconds:.2f} s", flush=True)
        if not delete_after:
            return
        with meter.phase(f"delete namespace of {objects:,} and wait until gone", objects) as phase:
            await delete_namespace(api)
        figures.delete_seconds.append(phase.wall)
    finally:
        await kube.close()
        await api.close()


def measure_kubectl(state: runner.SandboxState, workdir: Path, figures: Figures, meter: Meter) -> None:
    objects = figures.objects
    path = workdir / "manifests.yaml"
    write_manifests(path, objects)
    warm = kubectl(state, workdir, "api-resources")  # discovery cached, as on a user's machine
    if warm.returncode != 0:
        figures.problems.append(f"kubectl api-resources failed: {warm.stderr.decode(errors='replace')[:300]}")
    with meter.phase(f"kubectl create -f ({objects:,} ConfigMaps + namespace)", objects) as phase:
        done = kubectl(state, workdir, "create", "-f", str(path))
    created = done.stdout.count(b" created")
    if done.returncode != 0 or created != objects + 1:
        figures.problems.append(
            f"{objects:,}: kubectl create exited {done.returncode} after {created:,} creates: "
            f"{done.stderr.decode(errors='replace')[:300]}"
        )
        return
    figures.kubectl_seconds = phase.wall
    print(f"  {objects:,} objects: kubectl create {phase.wall:.2f} s", flush=True)


def measure_size(objects: int, kubectl_max: int, profile_dir: Path | None) -> Figures:
    """A fresh sandbox, every measurement at this size against it, the sandbox stopped."""
    figures = Figures(objects)
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-bench-backup-"))
    directory = workdir / "sandbox"
    profiler = Profiler(profile_dir)
    try:
        state = runner.start_detached(directory, port=None, nodes=1, insecure=False)
        meter = Meter(Procs(server=state.pid, etcd=state.etcdPid))
        try:
            backup = asyncio.run(measure_library(state, workdir, figures, meter, profiler))
            with meter.phase("CLI start-up: strongroom backup create --help", 0):
                figures.cli_startup_seconds = cli_startup(workdir)
            with meter.phase("ours: strongroom backup create (CLI process)", objects + 1):
                seconds, peak, code, output = cli_backup(state, workdir, f"bench-cli-{objects}")
            if code == 0:
                figures.cli_seconds, figures.cli_peak_rss = seconds, peak
            else:
                figures.problems.append(
                    f"{objects:,}: strongroom backup create exited {code}: {output[-500:]}"
                )
            with_kubectl = objects <= kubectl_max
            asyncio.run(
                measure_restore(state, workdir, backup, figures, meter, profiler, delete_after=with_kubectl)
            )
            if with_kubectl:
                measure_kubectl(state, workdir, figures, meter)
        finally:
            runner.stop(directory, timeout=60)
            figures.phases = meter.phases
        figures.problems += [f"{objects:,}: {problem}" for problem in server_log_problems(directory)]
    except Exception as exc:  # one size failing is a finding; the other sizes still run
        figures.problems.append(f"{objects:,}: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


# ----------------------------------------------------------------- reporting


def rows_of(figures: Figures) -> list[Row]:
    n = figures.objects
    ratios = figures.backup_ratios
    backup_note = (
        f"floor: one LIST, pages of {PAGE_SIZE}; time ratio {fmt_factor(statistics.median(ratios))} "
        f"(target ≤ {BACKUP_TARGET})"
        if ratios
        else "failed, see Problems"
    )
    restore_ratio = figures.restore_ratio
    restore_note = (
        f"reference: kubectl create -f; time ratio {fmt_factor(restore_ratio)} (target ≤ {RESTORE_TARGET})"
        if restore_ratio is not None
        else f"kubectl not measured at this size (full runs: up to {KUBECTL_MAX_FULL:,} objects)"
    )
    return [
        Row(
            f"backup, {n:,} ConfigMaps",
            "objects/s",
            per_second(n, figures.backup_median),
            per_second(n, figures.list_median),
            backup_note,
            tuple(1 / r for r in ratios) if len(ratios) > 1 else (),
        ),
        Row(
            f"restore, {n:,} ConfigMaps",
            "objects/s",
            per_second(n, figures.restore_seconds),
            per_second(n, figures.kubectl_seconds),
            restore_note,
        ),
    ]


def summary_table(sizes: list[Figures]) -> Table:
    rows = []
    for f in sizes:
        rows.append(
            [
                f"{f.objects:,}",
                fmt_seconds(f.list_median),
                fmt_seconds(f.backup_median),
                fmt_factor(statistics.median(f.backup_ratios) if f.backup_ratios else None),
                fmt_rate(per_second(f.objects, f.backup_median)),
                fmt_mb(f.cli_peak_rss),
                fmt_seconds(f.restore_seconds),
                fmt_rate(per_second(f.objects, f.restore_seconds)),
                fmt_seconds(f.kubectl_seconds),
                fmt_factor(f.restore_ratio),
            ]
        )
    return Table(
        f"Per size: seconds (medians of {ROUNDS} rounds for LIST and backup), time ratios, peak RSS",
        [
            "Objects",
            "Floor LIST s",
            "Backup s",
            f"Backup ÷ LIST (target ≤ {BACKUP_TARGET})",
            "Backup objects/s",
            "Peak RSS MB (CLI)",
            "Restore s",
            "Restore objects/s",
            "kubectl create s",
            f"Restore ÷ kubectl (target ≤ {RESTORE_TARGET})",
        ],
        rows,
    )


def rounds_table(sizes: list[Figures]) -> Table:
    rows = [
        [
            f"{f.objects:,}",
            str(index),
            fmt_seconds(list_s),
            fmt_seconds(backup_s),
            fmt_factor(backup_s / list_s),
        ]
        for f in sizes
        for index, (list_s, backup_s) in enumerate(zip(f.list_seconds, f.backup_seconds, strict=False), 1)
    ]
    return Table(
        "Every round: LIST then backup, back to back",
        ["Objects", "Round", "LIST s", "Backup s", "Ratio"],
        rows,
    )


def cli_table(sizes: list[Figures]) -> Table:
    rows = []
    for f in sizes:
        target = f"≤ {RSS_TARGET_MB}" if f.objects >= RSS_TARGET_OBJECTS else "—"
        rows.append(
            [
                f"{f.objects:,}",
                fmt_seconds(f.cli_seconds),
                fmt_seconds(f.backup_median),
                fmt_seconds(f.cli_startup_seconds),
                fmt_mb(f.cli_peak_rss),
                target,
                f"{f.backup_bytes / 1e6:,.1f}",
            ]
        )
    return Table(
        "`strongroom backup create` as a process: wall time, start-up, peak RSS (MB = 10^6 bytes)",
        [
            "Objects",
            "CLI wall s",
            "Library backup s",
            "Start-up s (--help)",
            "Peak RSS MB",
            "Target MB",
            "Tarball MB",
        ],
        rows,
    )


def phase_table(sizes: list[Figures]) -> Table:
    rows = [
        [
            f"{f.objects:,}",
            p.name,
            fmt_seconds(p.wall),
            fmt_seconds(p.client_cpu),
            fmt_seconds(p.server_cpu),
            fmt_seconds(p.etcd_cpu),
            fmt_seconds(p.other_cpu),
        ]
        for f in sizes
        for p in f.phases
    ]
    return Table(
        "Where the time goes: wall and CPU seconds per phase (client: this process or the CLI/kubectl it ran)",
        ["Size", "Phase", "Wall s", "Client CPU s", "Server CPU s", "etcd CPU s", "Other CPU s"],
        rows,
    )


def target_problems(sizes: list[Figures]) -> list[str]:
    found = []
    for f in sizes:
        ratio = statistics.median(f.backup_ratios) if f.backup_ratios else None
        if ratio is not None and ratio > BACKUP_TARGET:
            found.append(f"{f.objects:,}: backup takes {ratio:.2f} times the LIST (target ≤ {BACKUP_TARGET})")
        if f.restore_ratio is not None and f.restore_ratio > RESTORE_TARGET:
            found.append(
                f"{f.objects:,}: restore takes {f.restore_ratio:.2f} times kubectl create's time (target ≤ {RESTORE_TARGET})"
            )
        if f.objects >= RSS_TARGET_OBJECTS and f.cli_peak_rss and f.cli_peak_rss / 1e6 > RSS_TARGET_MB:
            found.append(
                f"{f.objects:,}: backup peaks at {f.cli_peak_rss / 1e6:,.0f} MB RSS (target ≤ {RSS_TARGET_MB})"
            )
    return found


def run(options: Options) -> Result:
    sizes = QUICK_SIZES if options.quick else FULL_SIZES
    kubectl_max = max(sizes) if options.quick else KUBECTL_MAX_FULL
    measured = []
    for objects in sizes:
        print(f"  size {objects:,}: starting a sandbox", flush=True)
        measured.append(measure_size(objects, kubectl_max, options.profile_dir))
    parameters = {
        "sizes": ", ".join(f"{n:,}" for n in sizes),
        "ConfigMap data": "1,024 B, 3 labels",
        "rounds": str(ROUNDS),
        "kubectl": f"{kubectl_version()}, up to {kubectl_max:,} objects",
        "etcd": etcd_version(),
        "data on": filesystem_of(Path(tempfile.gettempdir())),
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
    }
    if options.profile_dir is not None:
        parameters["profiled"] = "yes: the figures are skewed"
    return Result(
        name=NAME,
        title=TITLE,
        parameters=parameters,
        rows=[row for f in measured for row in rows_of(f)],
        tables=[summary_table(measured), cli_table(measured), rounds_table(measured), phase_table(measured)],
        problems=[problem for f in measured for problem in f.problems] + target_problems(measured),
        method=METHOD,
    )


METHOD = """
### How to read these figures

Each size is measured on a fresh sandbox holding one namespace of N ConfigMaps (about 1 KiB of
incompressible data and three labels each), filled with concurrent POSTs before anything is
timed. Everything runs on the same machine: the benchmark, the sandbox API server and etcd share
its cores, so the phase table shows where the CPU went.

- *backup*: the **floor** is one LIST of the namespace's ConfigMaps in pages of 500, following
  the continue tokens and decoding every page, through strongroom's own `KubeClient.list_pages`
  (the least any backup of these objects must do). **Ours** is the whole of `strongroom backup
  create NAME --include-namespaces NS` called as a library in the same process: plan (discovery,
  namespaces), the LIST of every namespaced type in the namespace, the tarball (JSON, tar, gzip,
  SHA-256), the log, the side files and the upload to a local-directory location. The two run back
  to back, three rounds; the rows show throughput (objects/s, so ours ÷ floor below 1 means slower),
  the tables show the time ratio the issue sets its target on (backup ÷ LIST, at most 1.3).
- *restore*: the namespace is deleted (and waited for), then restored from the backup through
  the library (`RestoreRunner`, 32 creates in flight); then it is deleted again and `kubectl
  create -f` creates the very manifests that were POSTed (the namespace first, one multi-document
  YAML file, discovery already cached). kubectl creates one object at a time and spends about
  25 ms of its own CPU on each: it unmarshals the OpenAPI v3 document of the object's group
  version for every object it sends (kubernetes/kubernetes#127095), so its cost grows with that
  document (the sandbox's `api/v1` one is about 430 KB). At 50,000 it would take over 20 minutes,
  so a full run measures it at 10,000 only. The issue's target: restore time ÷ kubectl time at
  most 0.2.
- *peak RSS*: `strongroom backup create` run as a process (its own config directory, so the
  built-in default location stores into a temporary directory), its resident memory sampled
  every 20 ms with psutil; the same run gives the CLI's wall time, which includes the
  interpreter's start-up and imports (measured on their own with `--help`).

To profile, run `python -m benchmarks.run --quick --only backup_restore --profile DIR`: every
library backup and the restore run under cProfile (the event loop's thread and the thread that
writes the tarball), one `.prof` per run in DIR with a text summary beside it; a profiled run's
figures are skewed and never go on this page.
"""
