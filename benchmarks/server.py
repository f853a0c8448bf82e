"""The in-cluster server's overhead: Backup and Restore resources vs. the same work done by the library.

Why: `strongroom server` turns a Backup or Restore resource into the very
engine calls `strongroom backup create` and `restore create` make; all it adds
is the watch that notices the resource, validation, status updates and
events, the log and results it stores, and its being another process on the
same machine. So its floor is the library doing the same backup (or restore)
in this process, on the same data in the same run; the ratio says what the
server's layer costs.

The server runs as its Deployment runs it (`strongroom server`, leader
election on, JSON log at info), as a subprocess of this one against a fresh
sandbox, with backup sync off so that the library's backups, stored in the
same location, never turn into Backup resources behind the measurement.
Its resident memory is sampled with psutil, and its start-up is timed from
the moment the process is spawned until it logs "became the leader".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.backup_restore import (
    LOCATION,
    NAMESPACE,
    backup_namespaces,
    delete_namespace,
    fill,
    floor_list,
    library_backup,
)
from benchmarks.backup_restore import Figures as FillFigures
from benchmarks.common import (
    Options,
    Result,
    Row,
    RssSampler,
    Table,
    cpu_seconds,
    fmt_factor,
    fmt_mb,
    fmt_seconds,
    per_second,
)
from benchmarks.sandbox_api import Api, etcd_version, filesystem_of, server_log_problems
from strongroom.kube import ApiResource, JsonObject, KubeClient
from strongroom.model.crds import crd_manifests
from strongroom.restore.request import RestoreFlags, build_restore, restore_options
from strongroom.restore.runner import RestoreOutcome, RestoreRunner
from strongroom.sandbox import runner
from strongroom.storage import Layout, open_store
from strongroom.storage.catalog import BackupCatalog

NAME = "server"
TITLE = "The in-cluster server: Backup and Restore resources vs. the same work by the library in-process"

FULL_OBJECTS = 10_000
QUICK_OBJECTS = 1_000
ROUNDS = 3  # library then server, back to back, for backups, restores and start-ups
SERVER_NAMESPACE = "openshift-adp"
PREFIX = "velero"  # the location's prefix inside its directory
POLL = 0.05  # seconds between GETs of a resource whose phase is awaited
RSS_INTERVAL = 0.02
DONE = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
LEADER_TIMEOUT = 60.0
PHASE_TIMEOUT = 300.0
SERVER_FLAGS = (
    "--metrics-address",
    "127.0.0.1:0",
    "--log-format",
    "json",
    "--log-level",
    "info",
    # The library's backups share the location: sync would make Backup resources of them mid-run.
    "--backup-sync-period",
    "0",
)


# ------------------------------------------------------------------ measuring


@dataclass
class Phase:
    """Wall time and CPU seconds per process of one step."""

    name: str
    wall: float = 0.0
    ours_cpu: float = 0.0  # the strongroom server process
    client_cpu: float = 0.0  # this process (the library, the polling) and `--help`
    api_cpu: float = 0.0  # the sandbox API server
    etcd_cpu: float = 0.0
    other_cpu: float = 0.0


@dataclass
class Meter:
    api: int
    etcd: int
    server: int = 0
    sampler: RssSampler | None = None
    phases: list[Phase] = field(default_factory=list)

    def cpu(self) -> tuple[float, float, float, float, float]:
        client = psutil.Process().cpu_times()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the subprocesses waited for (--help)
        machine = psutil.cpu_times()
        return (
            cpu_seconds(self.server) if self.server else 0.0,
            client.user + client.system + children.ru_utime + children.ru_stime,
            cpu_seconds(self.api, exclude={self.etcd}),
            cpu_seconds(self.etcd),
            sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
        )

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        phase = Phase(name)
        if self.sampler is not None:
            self.sampler.phase = name
        ours0, client0, api0, etcd0, machine0 = self.cpu()
        begun = time.perf_counter()
        try:
            yield phase
        finally:
            phase.wall = time.perf_counter() - begun
            ours1, client1, api1, etcd1, machine1 = self.cpu()
            phase.ours_cpu, phase.client_cpu = ours1 - ours0, client1 - client0
            phase.api_cpu, phase.etcd_cpu = api1 - api0, etcd1 - etcd0
            known = phase.ours_cpu + phase.client_cpu + phase.api_cpu + phase.etcd_cpu
            phase.other_cpu = max(0.0, machine1 - machine0 - known)
            self.phases.append(phase)
            if self.sampler is not None:
                self.sampler.phase = "between phases"


@dataclass
class Figures:
    objects: int
    library_backup: list[float] = field(default_factory=list)
    server_backup: list[float] = field(default_factory=list)
    library_restore: list[float] = field(default_factory=list)
    server_restore: list[float] = field(default_factory=list)
    help_seconds: list[float] = field(default_factory=list)  # `strongroom server --help`
    started_seconds: list[float] = field(default_factory=list)  # spawn until "starting" logged
    leader_seconds: list[float] = field(default_factory=list)  # spawn until "became the leader"
    available_seconds: float | None = None  # BackupStorageLocation created until Available
    items: dict[str, int] = field(default_factory=dict)
    rss_idle: int | None = None
    rss_backup: int | None = None
    rss_restore: int | None = None
    tarball_bytes: int = 0
    phases: list[Phase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def ratios(ours: list[float], floor: list[float]) -> list[float]:
    """Time ratios ours ÷ floor, one per round."""
    return [o / f for o, f in zip(ours, floor, strict=False) if f]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ----------------------------------------------------------------- the server


class ServerProcess:
    """`strongroom server` in a subprocess, its JSON log in a file."""

    def __init__(self, kubeconfig: str, log_path: Path, scratch: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.scratch = scratch
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned = 0.0  # time.time() just before the spawn
        self._offset = 0

    def start(self) -> None:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        args = [sys.executable, "-m", "strongroom", "server", "--kubeconfig", self.kubeconfig]
        args += ["--namespace", SERVER_NAMESPACE, "--scratch-dir", str(self.scratch), *SERVER_FLAGS]
        env = {**os.environ, "POD_NAME": "bench-server"}
        with self.log_path.open("ab") as log:
            self.spawned = time.time()
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def records(self, *, this_run: bool = True) -> list[dict[str, Any]]:
        with self.log_path.open("rb") as log:
            log.seek(self._offset if this_run else 0)
            text = log.read().decode(errors="replace")
        found = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def logged_at(self, fragment: str) -> float | None:
        """Seconds from the spawn to the first record of this run whose message holds `fragment`."""
        for record in self.records():
            if fragment in str(record.get("msg", "")):
                stamp = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
                return stamp.timestamp() - self.spawned
        return None

    async def wait_leading(self) -> tuple[float, float]:
        """Seconds from the spawn until it logged "starting" and "became the leader" (its log's clock)."""
        deadline = time.monotonic() + LEADER_TIMEOUT
        while time.monotonic() < deadline:
            leader = self.logged_at("became the leader")
            if leader is not None:
                return self.logged_at("starting") or 0.0, leader
            if self.proc is not None and self.proc.poll() is not None:
                break
            await asyncio.sleep(0.01)
        tail = self.log_path.read_text(errors="replace")[-800:]
        raise RuntimeError(
            f"strongroom server did not become the leader within {LEADER_TIMEOUT:.0f} s: {tail}"
        )

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return -9

    def problems(self) -> list[str]:
        """Warnings and errors the server logged in the whole run, one finding per distinct message."""
        seen: dict[str, int] = {}
        stopping = False
        for record in self.records(this_run=False):
            text = str(record.get("msg", ""))
            if "starting" in text and record.get("logger") == "strongroom.controller.server":
                stopping = False
            elif "SIGTERM" in text:
                stopping = True
            if str(record.get("level", "")) in ("warning", "error", "fatal", "panic"):
                message = f"{record.get('level')}{' (while stopping)' if stopping else ''}: {text}"
                seen[message] = seen.get(message, 0) + 1
        return [f"the server logged {count}x {message}" for message, count in seen.items()]


def server_help_seconds() -> float:
    """Wall seconds of `strongroom server --help`: the interpreter and the CLI's imports."""
    begun = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "strongroom", "server", "--help"], capture_output=True, check=True, timeout=120
    )
    return time.perf_counter() - begun


# -------------------------------------------------------------- the resources


@dataclass
class Kinds:
    backups: ApiResource
    restores: ApiResource
    locations: ApiResource


async def install_crds(kube: KubeClient) -> Kinds:
    crds = (await kube.discover()).find("apiextensions.k8s.io", "customresourcedefinitions")
    if crds is None:
        raise RuntimeError("the sandbox does not serve customresourcedefinitions")
    for manifest in crd_manifests():
        await kube.create(crds, manifest)
    served = {}
    for plural in ("backups", "restores", "backupstoragelocations"):
        served[plural] = await kube.wait_served("velero.io", "v1", plural)
    return Kinds(served["backups"], served["restores"], served["backupstoragelocations"])


def velero_object(kind: str, name: str, spec: JsonObject) -> JsonObject:
    return {
        "apiVersion": "velero.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": SERVER_NAMESPACE},
        "spec": spec,
    }


async def wait_phase(kube: KubeClient, res: ApiResource, name: str, wanted: tuple[str, ...]) -> JsonObject:
    """GET the resource every POLL seconds until its status.phase is one of `wanted`."""
    deadline = time.monotonic() + PHASE_TIMEOUT
    status: JsonObject = {}
    while time.monotonic() < deadline:
        obj = await kube.get(res, name, SERVER_NAMESPACE)
        status = (obj or {}).get("status") or {}
        if status.get("phase") in wanted:
            assert obj is not None
            return obj
        await asyncio.sleep(POLL)
    raise RuntimeError(
        f"{res.kind} {name} did not reach {'/'.join(wanted)} within {PHASE_TIMEOUT:.0f} s; status {status}"
    )


async def server_run(kube: KubeClient, res: ApiResource, body: JsonObject) -> tuple[float, JsonObject]:
    """Create the resource and wait until the server is done with it: seconds and the final object."""
    begun = time.perf_counter()
    await kube.create(res, body)
    done = await wait_phase(kube, res, body["metadata"]["name"], DONE)
    return time.perf_counter() - begun, done


async def library_restore(kube: KubeClient, catalog: BackupCatalog, backup: str, name: str) -> RestoreOutcome:
    """What `strongroom restore create NAME --from-backup BACKUP` does, without the process around it."""
    restore = build_restore(RestoreFlags(name=name, from_backup=backup), datetime.now(UTC))
    restorer = RestoreRunner(kube, catalog)
    await restorer.check_backup(backup)
    discovery = await kube.discover()
    options = restore_options(discovery, restore, await backup_namespaces(catalog, backup))
    return await restorer.run(restore, options, discovery=discovery)


def _progress(obj: JsonObject, key: str) -> int:
    return int(((obj.get("status") or {}).get("progress") or {}).get(key, 0))


# ------------------------------------------------------------------- the run


async def measure(state: runner.SandboxState, workdir: Path, figures: Figures, meter: Meter) -> None:
    objects = figures.objects
    expected = objects + 1  # and the namespace's kube-root-ca.crt
    api = Api(state)
    kube = await KubeClient.from_kubeconfig(state.kubeconfig)
    storage = workdir / "storage"
    storage.mkdir()
    catalog = BackupCatalog(open_store("local", str(storage), PREFIX), Layout())
    (workdir / "scratch").mkdir()
    server = ServerProcess(state.kubeconfig, workdir / "server.log", workdir / "scratch")
    try:
        with meter.phase(f"fill: create {objects:,} ConfigMaps (not measured)"):
            await fill(api, objects, FillFigures(objects))
            await api.create_namespace(SERVER_NAMESPACE)
            kinds = await install_crds(kube)
        configmaps = (await kube.discover()).find("", "configmaps")
        assert configmaps is not None

        # Start-up: the floor is the interpreter and the CLI's imports.
        for index in range(1, ROUNDS + 1):
            with meter.phase(f"floor: strongroom server --help, round {index}"):
                figures.help_seconds.append(server_help_seconds())
            with meter.phase(f"ours: server start until leader, round {index}") as phase:
                server.start()
                started, leader = await server.wait_leading()
            # The process did not exist when the phase began: its CPU is all it has used so far.
            phase.ours_cpu = cpu_seconds(server.pid)
            phase.other_cpu = max(0.0, phase.other_cpu - phase.ours_cpu)
            figures.started_seconds.append(started)
            figures.leader_seconds.append(leader)
            print(
                f"  start-up round {index}: --help {figures.help_seconds[-1]:.2f} s, "
                f"server leading after {leader:.2f} s",
                flush=True,
            )
            if index < ROUNDS:
                code = server.stop()
                if code != 0:
                    figures.problems.append(f"strongroom server exited {code} on SIGTERM")
        meter.server = server.pid
        with RssSampler({"server": server.pid}, interval=RSS_INTERVAL) as sampler:
            meter.sampler = sampler
            with meter.phase("BackupStorageLocation created until Available"):
                spec = {"provider": "local", "objectStorage": {"bucket": str(storage), "prefix": PREFIX}}
                begun = time.perf_counter()
                await kube.create(kinds.locations, velero_object("BackupStorageLocation", LOCATION, spec))
                await wait_phase(kube, kinds.locations, LOCATION, ("Available",))
                figures.available_seconds = time.perf_counter() - begun
            with meter.phase("warm-up: one library and one server backup (not measured)"):
                await library_backup(kube, catalog, "bench-lib-warm")
                warm = {"includedNamespaces": [NAMESPACE], "storageLocation": LOCATION}
                await server_run(kube, kinds.backups, velero_object("Backup", "bench-srv-warm", warm))
            with meter.phase("server idle"):
                await asyncio.sleep(1.0)
            figures.rss_idle = sampler.phase_peak.get("server idle", {}).get("server")

            backup = ""
            for index in range(1, ROUNDS + 1):
                with meter.phase(f"floor: library backup, round {index}") as phase:
                    outcome = await library_backup(kube, catalog, f"bench-lib-{index}")
                figures.library_backup.append(phase.wall)
                figures.items["library backup"] = _progress(outcome.backup, "itemsBackedUp")
                if outcome.phase != "Completed" or not outcome.stored:
                    figures.problems.append(f"library backup round {index} ended {outcome.phase}")
                backup = f"bench-srv-{index}"
                spec = {"includedNamespaces": [NAMESPACE], "storageLocation": LOCATION}
                with meter.phase(f"ours: server backup, round {index}"):
                    seconds, done = await server_run(
                        kube, kinds.backups, velero_object("Backup", backup, spec)
                    )
                figures.server_backup.append(seconds)
                figures.items["server backup"] = _progress(done, "itemsBackedUp")
                if done["status"]["phase"] != "Completed":
                    figures.problems.append(f"server backup {backup} ended {done['status']}")
                print(
                    f"  backup round {index}: library {figures.library_backup[-1]:.2f} s, "
                    f"server {seconds:.2f} s",
                    flush=True,
                )
            figures.tarball_bytes = sum(p.stat().st_size for p in storage.rglob(f"{backup}.tar.gz"))
            peaks = [
                peak.get("server", 0) for name, peak in sampler.phase_peak.items() if "server backup" in name
            ]
            figures.rss_backup = max(peaks) if peaks else None

            # Restores of the last server backup: the server's and the library's, each into a deleted namespace.
            for index in range(1, ROUNDS + 1):
                with meter.phase(f"delete namespace of {objects:,} and wait until gone"):
                    await delete_namespace(api)
                with meter.phase(f"ours: server restore, round {index}"):
                    spec = {"backupName": backup}
                    body = velero_object("Restore", f"bench-srv-restore-{index}", spec)
                    seconds, done = await server_run(kube, kinds.restores, body)
                figures.server_restore.append(seconds)
                figures.items["server restore"] = _progress(done, "itemsRestored")
                present = await floor_list(kube, configmaps)
                if done["status"]["phase"] != "Completed" or present != expected:
                    figures.problems.append(
                        f"server restore round {index} ended {done['status'].get('phase')}, "
                        f"{present:,} ConfigMaps afterwards (expected {expected:,})"
                    )
                with meter.phase(f"delete namespace of {objects:,} and wait until gone"):
                    await delete_namespace(api)
                with meter.phase(f"floor: library restore, round {index}") as phase:
                    restored = await library_restore(kube, catalog, backup, f"bench-lib-restore-{index}")
                figures.library_restore.append(phase.wall)
                figures.items["library restore"] = _progress(restored.restore, "itemsRestored")
                present = await floor_list(kube, configmaps)
                if restored.phase != "Completed" or present != expected:
                    figures.problems.append(
                        f"library restore round {index} ended {restored.phase}, "
                        f"{present:,} ConfigMaps afterwards (expected {expected:,})"
                    )
                print(
                    f"  restore round {index}: server {seconds:.2f} s, library {phase.wall:.2f} s",
                    flush=True,
                )
            peaks = [
                peak.get("server", 0) for name, peak in sampler.phase_peak.items() if "server restore" in name
            ]
            figures.rss_restore = max(peaks) if peaks else None
            meter.sampler = None
        if len({v for k, v in figures.items.items() if "backup" in k}) > 1:
            figures.problems.append(
                f"the server and the library backed up different item counts: {figures.items}"
            )
    finally:
        code = server.stop()
        if code != 0:
            figures.problems.append(f"strongroom server exited {code} on SIGTERM")
        figures.problems += server.problems()
        await kube.close()
        await api.close()


def measure_all(objects: int) -> Figures:
    """A fresh sandbox, every measurement against it, the sandbox stopped."""
    figures = Figures(objects)
    workdir = Path(tempfile.mkdtemp(prefix="strongroom-bench-server-"))
    directory = workdir / "sandbox"
    try:
        state = runner.start_detached(directory, port=None, nodes=1, insecure=False)
        meter = Meter(api=state.pid, etcd=state.etcdPid)
        try:
            asyncio.run(measure(state, workdir, figures, meter))
        finally:
            runner.stop(directory, timeout=60)
            figures.phases = meter.phases
        figures.problems += server_log_problems(directory)
    except Exception as exc:  # a failure is a finding: report what was measured
        figures.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


# ----------------------------------------------------------------- reporting


def _row(operation: str, unit: str, count: float, ours: list[float], floor: list[float], note: str) -> Row:
    times = ratios(ours, floor)
    time_note = f"time ratio {fmt_factor(median(times))}" if times else "failed, see Problems"
    return Row(
        operation,
        unit,
        per_second(count, median(ours)),
        per_second(count, median(floor)),
        f"{note}; {time_note}",
        tuple(1 / r for r in times) if len(times) > 1 else (),
    )


def rows_of(f: Figures) -> list[Row]:
    n = f.objects
    return [
        _row(
            f"server backup, {n:,} ConfigMaps",
            "objects/s",
            n,
            f.server_backup,
            f.library_backup,
            "floor: the same backup by the library in-process",
        ),
        _row(
            f"server restore, {n:,} ConfigMaps",
            "objects/s",
            n,
            f.server_restore,
            f.library_restore,
            "floor: the library's restore of the same backup",
        ),
        _row(
            "server start until it leads",
            "starts/s",
            1,
            f.leader_seconds,
            f.help_seconds,
            "floor: `strongroom server --help` (interpreter, CLI imports)",
        ),
    ]


def rounds_table(f: Figures) -> Table:
    rows = []
    for label, ours, floor in (
        ("backup", f.server_backup, f.library_backup),
        ("restore", f.server_restore, f.library_restore),
        ("start until leader (floor: --help)", f.leader_seconds, f.help_seconds),
    ):
        for index, (o, fl) in enumerate(zip(ours, floor, strict=False), 1):
            rows.append(
                [label, str(index), fmt_seconds(fl), fmt_seconds(o), fmt_factor(o / fl if fl else None)]
            )
    return Table(
        "Every round: seconds, floor then server, and the time ratio server ÷ floor",
        ["Operation", "Round", "Library / floor s", "Server s", "Server ÷ floor"],
        rows,
    )


def server_table(f: Figures) -> Table:
    return Table(
        "The server process: start-up (medians), memory (RSS, MB = 10^6 bytes), items",
        ["Figure", "Value"],
        [
            [
                "spawn until it logs `starting` (interpreter, imports), s",
                fmt_seconds(median(f.started_seconds)),
            ],
            ["spawn until it logs `became the leader`, s", fmt_seconds(median(f.leader_seconds))],
            ["`strongroom server --help`, s", fmt_seconds(median(f.help_seconds))],
            ["BackupStorageLocation created until Available, s", fmt_seconds(f.available_seconds)],
            ["RSS idle, after a warm-up backup, MB", fmt_mb(f.rss_idle)],
            [f"RSS peak during the backups of {f.objects:,}, MB", fmt_mb(f.rss_backup)],
            [f"RSS peak during the restores of {f.objects:,}, MB", fmt_mb(f.rss_restore)],
            ["tarball, MB", f"{f.tarball_bytes / 1e6:,.1f}"],
            *([f"items: {k}", f"{v:,}"] for k, v in f.items.items()),
        ],
    )


def phase_table(f: Figures) -> Table:
    rows = [
        [
            p.name,
            fmt_seconds(p.wall),
            fmt_seconds(p.ours_cpu),
            fmt_seconds(p.client_cpu),
            fmt_seconds(p.api_cpu),
            fmt_seconds(p.etcd_cpu),
            fmt_seconds(p.other_cpu),
        ]
        for p in f.phases
    ]
    return Table(
        "Where the time goes: wall and CPU seconds per phase (client: this process, which runs the library)",
        ["Phase", "Wall s", "Server CPU s", "Client CPU s", "API server CPU s", "etcd CPU s", "Other CPU s"],
        rows,
    )


def run(options: Options) -> Result:
    objects = QUICK_OBJECTS if options.quick else FULL_OBJECTS
    print(f"  {objects:,} objects: starting a sandbox", flush=True)
    figures = measure_all(objects)
    parameters = {
        "objects": f"{objects:,}",
        "ConfigMap data": "1,024 B, 3 labels",
        "rounds": str(ROUNDS),
        "status polled every": f"{POLL * 1000:.0f} ms",
        "etcd": etcd_version(),
        "data on": filesystem_of(Path(tempfile.gettempdir())),
    }
    if options.profile_dir is not None:
        parameters["profiled"] = "no: this benchmark does not profile"
    return Result(
        name=NAME,
        title=TITLE,
        parameters=parameters,
        rows=rows_of(figures),
        tables=[rounds_table(figures), server_table(figures), phase_table(figures)],
        problems=figures.problems,
        method=METHOD,
    )


METHOD = """
### How to read these figures

One fresh sandbox holds one namespace of N ConfigMaps (as in *backup_restore*), the Velero CRDs
and a local-directory BackupStorageLocation. `strongroom server` runs as its Deployment runs it
(leader election on, JSON log at info level, backup sync off so that the library's backups in the
same location do not become Backup resources mid-run), a subprocess of the benchmark on the same
cores as the sandbox.

- *server backup*: a Backup resource (`includedNamespaces` the namespace, `storageLocation` the
  location) is created and its `status.phase` read every 50 ms until `Completed`; the time runs
  from the POST to the first GET that sees it. The **floor** is the same backup by the library in
  this process (`strongroom backup create NAME --include-namespaces NS` without the process:
  plan, LIST, tarball, upload to the same location). One warm-up backup of each is not measured;
  then three rounds, library then server, back to back.
- *server restore*: the namespace is deleted (and waited for), a Restore of the last server
  backup is created and polled until `Completed`; the namespace is deleted again and the library
  restores the same backup (`RestoreRunner`, as `strongroom restore create`). Three rounds.
- *start-up*: from spawning `strongroom server` until its log says `became the leader` (the time
  stamped in that log record), three starts (each but the last stopped with SIGTERM, which
  releases the lease). The floor is `strongroom server --help`: the interpreter and the CLI's
  imports, which every start pays.
- *memory*: the server's RSS sampled every 20 ms with psutil, idle after the warm-up and at
  its peak during the measured backups and restores.

Rows show throughput (objects or starts per second, so ours ÷ floor below 1 means the server is
slower); the notes and the per-round table give the time ratio server ÷ library. The polling adds
up to 50 ms (25 ms on average) to each server figure.
"""
