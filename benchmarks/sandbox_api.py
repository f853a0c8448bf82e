"""ConfigMap create, list and watch throughput of the sandbox API server, next to the same work on bare etcd.

Why: the sandbox is what backup and restore run against in the demo and the
tests, so how fast it takes in and gives back thousands of objects bounds
how fast everything above it can go. Its floor is the etcd it stores into:
no API server can create, list or watch faster than etcd puts, ranges and
watches the same bytes. Both clients run in this process, against the same
etcd, in the same run, so their ratio is what this benchmark reports.

Our side uses a realistic Kubernetes client (aiohttp over HTTPS with the
sandbox's bearer token and CA, a bounded number of requests in flight, JSON
decoded as client-go would); the floor uses etcd3aio over gRPC with the same
concurrency and the same JSON bytes, under a key prefix outside /registry/ so
the API server and its controllers never see those keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import pstats
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import grpc
import psutil
from etcd3aio import prefix_range_end
from etcd3aio.kv import KVService
from etcd3aio.watch import WatchService

from benchmarks.common import Options, Phase, Result, Row, RssSampler, Table, combine_rows, cpu_seconds
from strongroom.sandbox import runner
from strongroom.sandbox.etcdproc import etcd_bin_dir

NAME = "sandbox_api"
TITLE = "ConfigMaps through the sandbox API server vs. directly on etcd"

FULL_OBJECTS = 10_000
QUICK_OBJECTS = 1_000
CONCURRENCY = 32  # requests in flight, on both sides
PAGE_SIZE = 500
LIST_REPEATS = 3  # list figures are the median of this many lists
ROUNDS = 3  # full passes, each on a fresh sandbox; the figures are medians, each ratio from one pass
PAYLOAD_BYTES = 1024  # size of each ConfigMap's data
NAMESPACE = "bench"
NAME_PREFIX = "bench-"
FEED_PREFIX = "feed-"  # ConfigMaps written straight into etcd for the watch-at-etcd-speed figure
FLOOR_PREFIX = f"/strongroom-bench-floor/configmaps/{NAMESPACE}/"  # outside /registry/
PHASE_TIMEOUT = 300.0
WARMUP_OBJECTS = 500
WARMUP_NAMESPACE = "bench-warmup"
WARMUP_PREFIX = "/strongroom-bench-warmup/"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


# ------------------------------------------------------------------ objects


def configmap(
    index: int, prefix: str = NAME_PREFIX, namespace: str = NAMESPACE
) -> tuple[str, dict[str, Any]]:
    """The name and manifest of the index-th ConfigMap: ~1 KiB of data, not compressible."""
    name = f"{prefix}{index:05d}"
    seed = hashlib.sha256(name.encode()).hexdigest()
    payload = (seed * (PAYLOAD_BYTES // len(seed) + 1))[: PAYLOAD_BYTES - 16]
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "strongroom-bench", "bench/index": str(index)},
        },
        "data": {"payload": payload, "index": f"{index:016d}"},
    }
    return name, obj


def request_body(index: int, prefix: str = NAME_PREFIX, namespace: str = NAMESPACE) -> tuple[str, bytes]:
    """What a client POSTs (and the floor puts): the manifest as compact JSON."""
    name, obj = configmap(index, prefix, namespace)
    return name, json.dumps(obj, separators=(",", ":")).encode()


def stored_body(index: int) -> tuple[str, bytes]:
    """A feed ConfigMap as the API server would have stored it (uid and timestamp set)."""
    name, obj = configmap(index, FEED_PREFIX)
    obj["metadata"]["uid"] = str(uuid.UUID(int=index + 1))
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    return name, json.dumps(obj, separators=(",", ":")).encode()


# ---------------------------------------------------------------- measuring


@dataclass
class Procs:
    server: int
    etcd: int

    def cpu(self) -> tuple[float, float, float, float]:
        """CPU seconds so far of the server, etcd, this client and the whole machine (busy time)."""
        client = psutil.Process().cpu_times()
        machine = psutil.cpu_times()
        return (
            cpu_seconds(self.server, exclude={self.etcd}),
            cpu_seconds(self.etcd),
            client.user + client.system,
            sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
        )


@dataclass
class Recorder:
    procs: Procs
    sampler: RssSampler
    phases: list[Phase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncGenerator[Phase]:
        phase = Phase(name)
        self.sampler.phase = name
        server0, etcd0, client0, machine0 = self.procs.cpu()
        start = time.perf_counter()
        try:
            async with asyncio.timeout(PHASE_TIMEOUT):
                yield phase
        finally:
            phase.wall = time.perf_counter() - start
            server1, etcd1, client1, machine1 = self.procs.cpu()
            phase.server_cpu, phase.etcd_cpu = server1 - server0, etcd1 - etcd0
            phase.client_cpu = client1 - client0
            ours = phase.server_cpu + phase.etcd_cpu + phase.client_cpu
            phase.other_cpu = max(0.0, machine1 - machine0 - ours)
            self.phases.append(phase)
            self.sampler.phase = "between phases"


@dataclass
class WriteRun:
    seconds: float
    succeeded: int
    latencies: list[float]
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0


async def write_all(
    count: int, write: Callable[[int], Awaitable[str | None]], concurrency: int = CONCURRENCY
) -> WriteRun:
    """Run write(0..count-1) with `concurrency` in flight; write returns an error text or None."""
    latencies: list[float] = []
    errors: list[str] = []
    indexes: Iterator[int] = iter(range(count))

    async def worker() -> None:
        for index in indexes:  # one shared iterator: each index is taken by exactly one worker
            begun = time.perf_counter()
            error = await write(index)
            latencies.append(time.perf_counter() - begun)
            if error is not None:
                errors.append(error)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return WriteRun(time.perf_counter() - start, count - len(errors), latencies, errors)


class EventCounter:
    """Counts watch events until a target; remembers when the target was reached."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done_at: float | None = None
        self.error: str | None = None

    def hit(self) -> bool:
        """Count one event; True once the target is reached."""
        self.count += 1
        if self.count >= self.target and self.done_at is None:
            self.done_at = time.perf_counter()
        return self.done_at is not None

    def retarget(self, target: int) -> None:
        """Expect `target` events after all (some writes failed)."""
        self.target = target
        if self.count >= target and self.done_at is None:
            self.done_at = time.perf_counter()

    async def wait(self, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while self.done_at is None and self.error is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        return self.done_at is not None


def median_rate(objects: int, seconds: list[float]) -> float:
    return objects / statistics.median(seconds)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -------------------------------------------------------------------- our side


class Api:
    """A Kubernetes client of the sandbox as a real one behaves: HTTPS, bearer token, pooled connections."""

    def __init__(self, state: runner.SandboxState) -> None:
        pki = Path(state.dir) / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        token = (pki / "token").read_text().strip()
        self.session = aiohttp.ClientSession(
            base_url=state.server,
            connector=aiohttp.TCPConnector(limit=CONCURRENCY + 4, ssl=context),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
        )

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self, method: str, path: str, body: bytes | None = None, params: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with self.session.request(method, path, data=body, params=params, headers=headers) as resp:
            return resp.status, await resp.read()

    async def create(self, body: bytes, namespace: str = NAMESPACE) -> str | None:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        try:
            status, raw = await self.request("POST", path, body)
        except aiohttp.ClientError as exc:
            return f"POST {path}: {type(exc).__name__}: {exc}"
        if status != 201:
            return f"POST {path} -> {status} {raw[:300]!r}"
        json.loads(raw)  # a client decodes what the server answers
        return None

    async def create_namespace(self, name: str) -> None:
        """Create a namespace and wait for the kube-root-ca.crt its controller adds, so that it
        does not land inside a measurement."""
        body = json.dumps({"metadata": {"name": name}}).encode()
        status, raw = await self.request("POST", "/api/v1/namespaces", body)
        if status != 201:
            raise RuntimeError(f"POST /api/v1/namespaces ({name}) -> {status} {raw[:300]!r}")
        for _ in range(300):
            status, _ = await self.request("GET", f"/api/v1/namespaces/{name}/configmaps/kube-root-ca.crt")
            if status == 200:
                return
            await asyncio.sleep(0.05)

    async def list_pages(self, limit: int) -> tuple[int, str | None]:
        """List all ConfigMaps of the namespace, `limit` per page (0: one unpaginated list)."""
        count = 0
        token = ""
        while True:
            params = {"limit": str(limit)} if limit else {}
            if token:
                params["continue"] = token
            status, raw = await self.request("GET", CONFIGMAPS, params=params)
            if status != 200:
                return (
                    count,
                    f"GET {CONFIGMAPS}?{'&'.join(f'{k}={v}' for k, v in params.items())} -> {status} {raw[:300]!r}",
                )
            listing = json.loads(raw)
            count += len(listing["items"])
            token = listing["metadata"].get("continue", "")
            if not token:
                return count, None

    async def watch(self, resource_version: str, counter: EventCounter, prefix: str = NAME_PREFIX) -> None:
        """Count ADDED events of ConfigMaps named `prefix`* from `resource_version` on, decoding each."""
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "false"}
        try:
            async with self.session.get(CONFIGMAPS, params=params) as resp:
                if resp.status != 200:
                    counter.error = (
                        f"GET {CONFIGMAPS}?watch=true -> {resp.status} {(await resp.read())[:300]!r}"
                    )
                    return
                async for line in resp.content:
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        counter.error = f"watch ERROR event: {event['object']}"
                        return
                    ours = event["object"]["metadata"]["name"].startswith(prefix)
                    if event["type"] == "ADDED" and ours and counter.hit():
                        return
        except aiohttp.ClientError as exc:
            counter.error = f"watch: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- floor


class Floor:
    """etcd as a client talks to it directly; the receive limit is lifted as etcd's own Go client does."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.aio.insecure_channel(
            endpoint.removeprefix("http://"), options=[("grpc.max_receive_message_length", -1)]
        )
        self.kv = KVService(self.channel)
        self.watch_service = WatchService(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def revision(self) -> int:
        resp = await self.kv.get(FLOOR_PREFIX, range_end=prefix_range_end(FLOOR_PREFIX), count_only=True)
        return int(resp.header.revision)

    async def put(self, key: str, body: bytes) -> str | None:
        try:
            await self.kv.put(key, body)
        except Exception as exc:  # any failure is a figure to report, not a crash
            return f"etcd put {key}: {type(exc).__name__}: {exc}"
        return None

    async def range_pages(self, limit: int) -> int:
        """Read the floor's prefix at one revision, `limit` keys per request (0: a single range)."""
        count = 0
        key: bytes = FLOOR_PREFIX.encode()
        end = prefix_range_end(FLOOR_PREFIX)
        revision = 0
        while True:
            resp = await self.kv.get(key, range_end=end, revision=revision, limit=limit)
            revision = revision or int(resp.header.revision)
            for kv in resp.kvs:
                json.loads(kv.value)
                count += 1
            if not limit or not resp.more or not resp.kvs:
                return count
            key = resp.kvs[-1].key + b"\x00"

    async def watch(self, prefix: str, start_revision: int, counter: EventCounter) -> None:
        """Count (and decode) the events under `prefix` from `start_revision` on."""
        stream = cast(
            AsyncGenerator[Any],
            self.watch_service.watch(
                prefix, range_end=prefix_range_end(prefix), start_revision=start_revision
            ),
        )
        try:
            async for response in stream:
                for event in response.events:
                    json.loads(event.kv.value)
                    if counter.hit():
                        return
        except Exception as exc:  # reported, not raised
            counter.error = f"etcd watch: {type(exc).__name__}: {exc}"
        finally:
            await stream.aclose()


# ----------------------------------------------------------------- the sandbox


def start_sandbox(directory: Path, profile: Path | None) -> runner.SandboxState:
    """A fresh sandbox; under cProfile (written to `profile` when it stops) when asked."""
    if profile is None:
        return runner.start_detached(directory, port=None, nodes=1, insecure=False)
    directory.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "strongroom", "sandbox", "up"]
    with open(directory / runner.LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [*args, "--dir", str(directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the profiled sandbox exited with {proc.returncode}; see {directory}")
        state = runner.read_state(directory)
        if state is not None and state.pid == proc.pid and state.ready and runner.api_ready(state):
            return state
        time.sleep(0.1)
    raise RuntimeError("the profiled sandbox did not become ready")


def etcd_version() -> str:
    try:
        out = subprocess.run(
            [str(etcd_bin_dir() / "etcd"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout
    except OSError:
        return "unknown"
    return out.splitlines()[0].split(":", 1)[-1].strip() if out else "unknown"


def filesystem_of(path: Path) -> str:
    best = ""
    kind = "unknown"
    for part in psutil.disk_partitions(all=True):
        if str(path).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
            best, kind = part.mountpoint, part.fstype
    return kind


def server_log_problems(directory: Path) -> list[str]:
    """Errors the sandbox logged during the run: one finding per distinct message and exception."""
    try:
        lines = (directory / runner.LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return []
    seen: dict[str, int] = {}
    for index, line in enumerate(lines):
        if not any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL")):
            continue
        message = line.split(" ", 2)[-1]  # without the timestamp
        # A logged traceback ends with an unindented "Type: text" line (gRPC adds indented details).
        for follow in lines[index + 1 : index + 80]:
            if follow[:4].isdigit():
                break  # the next log record
            if follow.strip() not in ("", ">") and not follow.startswith((" ", "\t", "Traceback")):
                message += f" <- {follow.strip()}"
            elif follow.strip().startswith("details = "):
                message += f" ({follow.strip()})"
        seen[message] = seen.get(message, 0) + 1
    return [f"the sandbox logged {count}x: {message}" for message, count in seen.items()]


# ------------------------------------------------------------------ the run


@dataclass
class Figures:
    objects: int
    create_ours: WriteRun | None = None
    create_floor: WriteRun | None = None
    live_ours: tuple[float | None, float | None] = (None, None)  # events/s, lag after last write (s)
    live_floor: tuple[float | None, float | None] = (None, None)
    replay_ours: float | None = None
    replay_floor: float | None = None
    paged_ours: float | None = None
    paged_floor: float | None = None
    full_ours: float | None = None
    full_floor: float | None = None
    fed_ours: tuple[float | None, float | None] = (None, None)  # events/s, lag after last write (s)
    fed_floor: tuple[float | None, float | None] = (None, None)
    rss_idle: dict[str, int] = field(default_factory=dict)


async def create_with_live_watch(
    rec: Recorder,
    label: str,
    count: int,
    write: Callable[[int], Awaitable[str | None]],
    watch: Callable[[EventCounter], Coroutine[Any, Any, None]],
) -> tuple[WriteRun, float | None, float | None]:
    """N writes while a watch opened before them counts the events; the watch's rate and lag."""
    counter = EventCounter(count)
    async with rec.phase(f"{label}: create {count:,} (+ live watch)") as phase:
        watcher = asyncio.create_task(watch(counter))
        await asyncio.sleep(0.2)  # let the watch be established
        begun = time.perf_counter()
        run = await write_all(count, write)
        ended = time.perf_counter()
        counter.retarget(run.succeeded)
        await counter.wait(60)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        phase.objects = count
    if run.errors:
        rec.problems.append(f"{label} create: {len(run.errors)} of {count} failed; first: {run.errors[0]}")
    if counter.error:
        rec.problems.append(f"{label} live watch: {counter.error}")
    if counter.done_at is None:
        rec.problems.append(f"{label} live watch: {counter.count} of {counter.target} events within 60 s")
        return run, None, None
    return run, counter.target / (counter.done_at - begun), counter.done_at - ended


async def replay(
    rec: Recorder, label: str, count: int, watch: Callable[[EventCounter], Coroutine[Any, Any, None]]
) -> float | None:
    counter = EventCounter(count)
    async with rec.phase(f"{label}: watch replay of {count:,}") as phase:
        begun = time.perf_counter()
        task = asyncio.create_task(watch(counter))
        await counter.wait(PHASE_TIMEOUT - 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        phase.objects = counter.count
    if counter.error:
        rec.problems.append(f"{label} watch replay: {counter.error}")
    if counter.done_at is None:
        rec.problems.append(f"{label} watch replay: only {counter.count} of {count} events arrived")
        return None
    return count / (counter.done_at - begun)


async def watch_fed_by_etcd(
    rec: Recorder, api: Api, floor: Floor, count: int
) -> tuple[tuple[float | None, float | None], tuple[float | None, float | None]]:
    """An API watch and an etcd watch side by side while objects go straight into etcd at full speed.

    The API server's create path is its bottleneck, so a watch fed through it
    never shows what the watch path can carry; writing the stored form into
    etcd directly feeds both watchers as fast as etcd itself commits.
    """
    prefix = f"/registry/configmaps/{NAMESPACE}/{FEED_PREFIX}"
    bodies = [stored_body(i) for i in range(count)]
    status, raw = await api.request("GET", CONFIGMAPS, params={"limit": "1"})
    if status != 200:
        rec.problems.append(f"GET {CONFIGMAPS}?limit=1 -> {status} {raw[:300]!r}")
        return (None, None), (None, None)
    rv = json.loads(raw)["metadata"]["resourceVersion"]
    counters = {"ours": EventCounter(count), "floor": EventCounter(count)}
    async with rec.phase(f"both: {count:,} etcd puts, API and etcd watch open") as phase:
        watchers = [
            asyncio.create_task(api.watch(rv, counters["ours"], FEED_PREFIX)),
            asyncio.create_task(floor.watch(prefix, int(rv) + 1, counters["floor"])),
        ]
        await asyncio.sleep(0.2)
        begun = time.perf_counter()
        run = await write_all(count, lambda i: floor.put(prefix + bodies[i][0], bodies[i][1]))
        ended = time.perf_counter()
        for counter in counters.values():
            counter.retarget(run.succeeded)
        for counter in counters.values():
            await counter.wait(60)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        phase.objects = count
    if run.errors:
        rec.problems.append(f"etcd puts under /registry/: {len(run.errors)} failed; first: {run.errors[0]}")
    figures: list[tuple[float | None, float | None]] = []
    for label, counter in counters.items():
        if counter.error:
            rec.problems.append(f"{label} watch fed by etcd: {counter.error}")
        if counter.done_at is None:
            rec.problems.append(
                f"{label} watch fed by etcd: {counter.count} of {counter.target} events in 60 s"
            )
            figures.append((None, None))
        else:
            figures.append((counter.target / (counter.done_at - begun), counter.done_at - ended))
    return figures[0], figures[1]


async def timed_lists(
    rec: Recorder, label: str, expected: int, list_once: Callable[[], Awaitable[tuple[int, str | None]]]
) -> float | None:
    seconds: list[float] = []
    async with rec.phase(f"{label}, {LIST_REPEATS} times") as phase:
        for _ in range(LIST_REPEATS):
            begun = time.perf_counter()
            try:
                count, error = await list_once()
            except Exception as exc:  # reported with the figures
                count, error = 0, f"{type(exc).__name__}: {exc}"
            seconds.append(time.perf_counter() - begun)
            phase.objects += count
            if error is not None:
                rec.problems.append(f"{label}: {error}")
                return None
            if count < expected:
                rec.problems.append(f"{label}: got {count} objects, expected at least {expected}")
                return None
    return median_rate(expected, seconds)


async def bench(state: runner.SandboxState, objects: int, rec: Recorder) -> Figures:
    figures = Figures(objects)
    api = Api(state)
    floor = Floor(state.etcdEndpoints[0])
    bodies = [request_body(i) for i in range(objects)]
    try:
        await api.create_namespace(NAMESPACE)
        await api.create_namespace(WARMUP_NAMESPACE)
        # Warm both paths up outside the figures: the connection pools (TLS handshakes), the
        # server's code paths, etcd's WAL and page cache.
        async with rec.phase("warm-up (not measured)") as warmup:
            warmup.objects = WARMUP_OBJECTS * 5
            warm = [request_body(i, "warmup-", WARMUP_NAMESPACE) for i in range(WARMUP_OBJECTS)]
            for label, warmed in (
                ("ours", await write_all(WARMUP_OBJECTS, lambda i: api.create(warm[i][1], WARMUP_NAMESPACE))),
                (
                    "floor",
                    await write_all(
                        WARMUP_OBJECTS * 4,
                        lambda i: floor.put(f"{WARMUP_PREFIX}{i}", warm[i % WARMUP_OBJECTS][1]),
                    ),
                ),
            ):
                if warmed.errors:
                    rec.problems.append(
                        f"{label} warm-up: {len(warmed.errors)} failed; first: {warmed.errors[0]}"
                    )
        status, raw = await api.request("GET", CONFIGMAPS, params={"limit": "1"})
        if status != 200:
            raise RuntimeError(f"GET {CONFIGMAPS}?limit=1 -> {status} {raw[:300]!r}")
        rv_before = json.loads(raw)["metadata"]["resourceVersion"]
        floor_before = await floor.revision()
        await asyncio.sleep(1.0)
        figures.rss_idle = rec.sampler.sample()

        # create, with a watch opened before it counting what it delivers
        run, rate, lag = await create_with_live_watch(
            rec,
            "floor",
            objects,
            lambda i: floor.put(FLOOR_PREFIX + bodies[i][0], bodies[i][1]),
            lambda c: floor.watch(FLOOR_PREFIX, floor_before + 1, c),
        )
        figures.create_floor, figures.live_floor = run, (rate, lag)
        run, rate, lag = await create_with_live_watch(
            rec, "ours", objects, lambda i: api.create(bodies[i][1]), lambda c: api.watch(rv_before, c)
        )
        figures.create_ours, figures.live_ours = run, (rate, lag)
        created_ours = run.succeeded
        created_floor = figures.create_floor.succeeded

        # list: pages of PAGE_SIZE, then everything in one response
        figures.paged_floor = await timed_lists(
            rec,
            f"floor: range in pages of {PAGE_SIZE}",
            created_floor,
            lambda: _counted(floor.range_pages(PAGE_SIZE)),
        )
        figures.paged_ours = await timed_lists(
            rec, f"ours: list in pages of {PAGE_SIZE}", created_ours, lambda: api.list_pages(PAGE_SIZE)
        )
        figures.full_floor = await timed_lists(
            rec, "floor: one range of the prefix", created_floor, lambda: _counted(floor.range_pages(0))
        )
        figures.full_ours = await timed_lists(
            rec, "ours: one unpaginated list", created_ours, lambda: api.list_pages(0)
        )

        # watch replay: everything since before the creates, as fast as it can be delivered
        figures.replay_floor = await replay(
            rec, "floor", created_floor, lambda c: floor.watch(FLOOR_PREFIX, floor_before + 1, c)
        )
        figures.replay_ours = await replay(rec, "ours", created_ours, lambda c: api.watch(rv_before, c))

        # watch, live, fed as fast as etcd takes writes: the API server's watch path at its limit
        figures.fed_ours, figures.fed_floor = await watch_fed_by_etcd(rec, api, floor, objects)
    finally:
        await api.close()
        await floor.close()
    return figures


async def _counted(coro: Awaitable[int]) -> tuple[int, str | None]:
    return await coro, None


# ---------------------------------------------------------------- reporting


@dataclass
class Round:
    """One full pass on a fresh sandbox."""

    figures: Figures
    rec: Recorder


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:,.0f}"


def rows_of(figures: Figures) -> list[Row]:
    co, cf = figures.create_ours, figures.create_floor
    return [
        Row(
            f"create (POST, {CONCURRENCY} in flight)",
            "objects/s",
            co.rate if co else None,
            cf.rate if cf else None,
            "floor: etcd put of the same bytes",
        ),
        Row(
            f"list, pages of {PAGE_SIZE}",
            "objects/s",
            figures.paged_ours,
            figures.paged_floor,
            f"limit/continue; floor: ranges of {PAGE_SIZE} at one revision",
        ),
        Row(
            "list, unpaginated",
            "objects/s",
            figures.full_ours,
            figures.full_floor,
            "floor: one range read" + ("; ours failed, see Problems" if figures.full_ours is None else ""),
        ),
        Row(
            "watch, live, fed at etcd speed",
            "events/s",
            figures.fed_ours[0],
            figures.fed_floor[0],
            "the watch throughput: does it keep up with etcd",
        ),
        Row(
            "watch, replay from before the creates",
            "events/s",
            figures.replay_ours,
            figures.replay_floor,
            "both capped by etcd's catch-up of an old revision",
        ),
        Row(
            "watch, live while creating via the API",
            "events/s",
            figures.live_ours[0],
            figures.live_floor[0],
            "capped by the create rate",
        ),
    ]


def phase_table(rounds: list[Round]) -> Table:
    """Per phase: medians over the rounds of wall and CPU time, the highest RSS seen."""
    names = [phase.name for phase in rounds[0].rec.phases]
    rows = []
    for name in names:
        phases = [p for r in rounds for p in r.rec.phases if p.name == name]
        peaks = [r.rec.sampler.phase_peak.get(name, {}) for r in rounds]

        def med(attr: str, phases: list[Phase] = phases) -> str:
            return f"{statistics.median(getattr(p, attr) for p in phases):.2f}"

        rows.append(
            [
                name,
                f"{phases[0].objects:,}",
                med("wall"),
                med("server_cpu"),
                med("etcd_cpu"),
                med("client_cpu"),
                med("other_cpu"),
                _mib(max(p.get("server", 0) for p in peaks)),
                _mib(max(p.get("etcd", 0) for p in peaks)),
            ]
        )
    median_note = " (medians of the rounds)" if len(rounds) > 1 else ""
    return Table(
        f"Where the time goes: wall and CPU seconds per phase{median_note}, peak RSS (MiB) during it",
        [
            "Phase",
            "Objects",
            "Wall s",
            "Server CPU s",
            "etcd CPU s",
            "Client CPU s",
            "Other CPU s",
            "Server RSS",
            "etcd RSS",
        ],
        rows,
    )


def memory_table(rounds: list[Round]) -> Table:
    rows = []
    for group, label in (
        ("server", "API server (+ children but etcd)"),
        ("etcd", "etcd (shared by both sides)"),
    ):
        top = max(rounds, key=lambda r: r.rec.sampler.peak[group])
        rows.append(
            [
                label,
                _mib(statistics.median(r.figures.rss_idle.get(group, 0) for r in rounds)),
                _mib(top.rec.sampler.peak[group]),
                top.rec.sampler.peak_phase[group],
            ]
        )
    return Table("Memory (RSS, MiB)", ["Process", "Idle, after the warm-up", "Peak", "Peak during"], rows)


def lag_table(rounds: list[Round]) -> Table:
    """How far behind the writes each watch finished: a watch that keeps up ends within a few ms."""
    rows = [
        [f"round {i}", _ms(r.figures.fed_ours[1]), _ms(r.figures.fed_floor[1]), _ms(r.figures.live_ours[1])]
        for i, r in enumerate(rounds, 1)
    ]
    return Table(
        "Watch lag: ms from the last write answered to the last event received (≤ 0: no lag)",
        ["Round", "Ours, fed at etcd speed", "Floor, fed at etcd speed", "Ours, while creating via the API"],
        rows,
    )


def latency_table(rounds: list[Round]) -> Table | None:
    sides = {
        "ours (POST)": [x for r in rounds if r.figures.create_ours for x in r.figures.create_ours.latencies],
        "floor (etcd put)": [
            x for r in rounds if r.figures.create_floor for x in r.figures.create_floor.latencies
        ],
    }
    if not all(sides.values()):
        return None
    return Table(
        f"Create latency (ms) with {CONCURRENCY} in flight, all rounds",
        ["Side", "p50", "p95", "p99", "max"],
        [
            [side, *(f"{percentile(values, q) * 1000:.1f}" for q in (0.5, 0.95, 0.99, 1.0))]
            for side, values in sides.items()
        ],
    )


def report(rounds: list[Round], parameters: dict[str, str]) -> Result:
    tables = [phase_table(rounds), memory_table(rounds), lag_table(rounds)]
    latency = latency_table(rounds)
    if latency is not None:
        tables.append(latency)
    # The same finding once, with the rounds it happened in (numbers in it, e.g. sizes, may differ).
    found: dict[str, tuple[str, list[int]]] = {}
    for index, r in enumerate(rounds, 1):
        for problem in r.rec.problems:
            found.setdefault(re.sub(r"\d+", "#", problem), (problem, []))[1].append(index)
    problems = [
        text
        if len(rounds) == 1
        else f"{text} (round{'s' if len(seen) > 1 else ''} {', '.join(map(str, seen))})"
        for text, seen in found.values()
    ]
    return Result(
        name=NAME,
        title=TITLE,
        parameters={**parameters, "objects": f"{rounds[0].figures.objects:,}", "rounds": str(len(rounds))},
        rows=combine_rows([rows_of(r.figures) for r in rounds]),
        tables=tables,
        problems=problems,
        method=METHOD,
    )


def one_round(objects: int, workdir: Path, profile: Path | None) -> Round:
    """A fresh sandbox, every measurement against it, the sandbox stopped."""
    directory = workdir / "sandbox"
    state = start_sandbox(directory, profile)
    try:
        procs = Procs(server=state.pid, etcd=state.etcdPid)
        with RssSampler({"server": state.pid, "etcd": state.etcdPid}) as sampler:
            rec = Recorder(procs, sampler)
            figures = asyncio.run(bench(state, objects, rec))
    finally:
        runner.stop(directory, timeout=60)
    rec.problems += server_log_problems(directory)
    return Round(figures, rec)


def run(options: Options) -> Result:
    objects = QUICK_OBJECTS if options.quick else FULL_OBJECTS
    profile = None
    if options.profile_dir is not None:
        options.profile_dir.mkdir(parents=True, exist_ok=True)
        profile = options.profile_dir / "sandbox-server.prof"
    count = 1 if options.quick or profile else ROUNDS
    parameters = {
        "ConfigMap data": f"{PAYLOAD_BYTES:,} B",
        "concurrency": str(CONCURRENCY),
        "etcd": etcd_version(),
        "etcd data on": filesystem_of(Path(tempfile.gettempdir())),
    }
    rounds: list[Round] = []
    for index in range(1, count + 1):
        workdir = Path(tempfile.mkdtemp(prefix="strongroom-bench-"))
        try:
            rounds.append(one_round(objects, workdir, profile))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        create = rows_of(rounds[-1].figures)[0]
        print(
            f"  round {index}/{count}: create {create.ours or 0:,.0f}/s vs. {create.floor or 0:,.0f}/s",
            flush=True,
        )
    if profile is not None and profile.exists():
        print_profile(profile)
    return report(rounds, parameters)


def print_profile(path: Path, top: int = 30) -> None:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    (path.with_suffix(".txt")).write_text(out.getvalue())
    print(f"server profile: {path} (summary in {path.with_suffix('.txt')})")


METHOD = """
### How to read these figures

Each row is one operation on N ConfigMaps (about 1 KiB of data each, all in one namespace) done
two ways in the same run: **ours** through the sandbox API server, the way a Kubernetes client
does it (HTTPS, bearer token, JSON, 32 requests in flight), and the **floor** directly on the
etcd the sandbox stores into (etcd3aio over gRPC, the same JSON bytes, the same 32 in flight,
under a key prefix outside `/registry/` so the server never sees those keys). Rates are objects
or events per second; higher is better. **Ours ÷ floor** is a throughput ratio taken within one
round: 0.20 means the API server gets a fifth of what etcd alone does, i.e. the server's layer
costs 80 % of the time. The run does three rounds, each on a fresh sandbox after a short
warm-up; rates are medians and *Range* is the lowest and highest per-round ratio, which shows
the noise (the absolute rates of both sides move together with the machine's disk and CPU
steal; their ratio moves far less). Both clients decode every object they receive, as a real
client would.

- *create*: N POSTs vs. N etcd puts. Per object the server authenticates, parses, validates,
  defaults, stamps uid and creationTimestamp, checks the namespace exists (an etcd read) and
  writes with a guarded transaction (create only if absent); its controllers also decode every
  new object from their registry-wide watch.
- *list*: the whole namespace in pages of 500 (`limit`/`continue`) and in one unpaginated
  response; the floor ranges the same keys (pages of 500 at one revision, or one range). Each
  is the median of three lists.
- *watch, live, fed at etcd speed* (**the watch throughput**): N ConfigMaps in their stored form
  are put straight into etcd under `/registry/` as fast as etcd takes them, while an API watch
  and an etcd watch are open side by side. The API create path is far slower than etcd, so a
  watch fed through it could never show what the watch path carries; fed by etcd, a ratio of
  1.0 means the server's watch delivers every event as fast as etcd produces it (the lag table
  says how far behind the last write each watch finished).
- *watch, replay*: a watch from the resourceVersion taken before the creates, opened after them.
  Both sides are capped by etcd itself, which sends a watcher that starts from an old revision
  at most 1,000 revisions per 100 ms catch-up cycle; a ratio near 1 only says the server adds
  nothing to that. (kube-apiserver serves such replays from its watch cache; the sandbox has
  none.)
- *watch, live while creating via the API*: the watch opened before the creates; it can never
  beat the create rate, so it only says whether the watch keeps up with the API's own writes.

**Where the time goes.** The phase table gives wall time and the CPU seconds of the server,
etcd and the benchmark client per phase (one machine, two cores, shared by all three), and
*Other CPU s*, what the rest of the machine used meanwhile: when it is well above zero, other
work competed with the run and its figures are low (the ratio suffers less than the rates).
On a quiet machine the server's CPU time during *ours: create* is close to the wall time:
creates are bound by the server's single Python thread (about 0.9 ms of CPU per create), not
by etcd. A cProfile of the server during 10,000 creates alone (2026-11-25, before the
namespace cache) split its time roughly into: gRPC client calls to etcd (grpc.aio, protobuf,
etcd3aio) 20 %, serving HTTP (aiohttp, TLS, socket writes) 27 %, the asyncio loop 11 %, and
the sandbox's own code with JSON and deepcopy 22 %. A create is one etcd transaction: the
namespace's existence comes from the controllers' watch, as kube-apiserver's namespace
lifecycle admission reads an informer, and etcd is read only when that cache has no active
namespace of that name. Lists cost the server about 30 µs per
object (decode from etcd, re-encode for the client). A watch event costs far more when events
arrive live than in a replay, because live events come one per gRPC message and each goes to
the client in its own TLS write; the server still kept up with etcd at the rates measured here.

Peak RSS is sampled every 50 ms with psutil over the server process and its children except
etcd, which is reported on its own (etcd also holds the floor's keys). To profile the server
yourself, run `python -m benchmarks.run --quick --only sandbox_api --profile DIR`: the profile
goes to DIR/sandbox-server.prof with a text summary beside it; a profiled run's figures are
skewed and never go on this page.
"""
