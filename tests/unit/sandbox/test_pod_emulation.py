"""The sandbox kubelet's safety rules: pod names and paths stay inside the node, tokens renew, processes end."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.runasync import run_async

from strongroom.sandbox import admission, apierrors
from strongroom.sandbox.containers import host_view_paths
from strongroom.sandbox.kubelet import (
    ConfigError,
    Kubelets,
    PathEscape,
    VolumeNotReady,
    Volumes,
    _sub_path,
    _write_files,
    contained,
    container_rootfs,
    path_segment,
    projected_token_lifetimes,
    token_refresh_delay,
)
from strongroom.sandbox.remotecommand import _kill
from strongroom.sandbox.resources import BUILTIN_TYPES
from strongroom.sandbox.runtime import HOSTPATH_DRIVER, volume_dir
from strongroom.sandbox.scheduler import Scheduler
from strongroom.sandbox.tokens import EXTENDED_EXPIRATION, ISSUER, TokenIssuer, pod_token_lifetime

JsonObject = dict[str, Any]
POD_TYPE = next(rt for rt in BUILTIN_TYPES if (rt.group, rt.resource) == ("", "pods"))


def _pod(**spec: Any) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def _causes(pod: JsonObject) -> list[tuple[str, str]]:
    with pytest.raises(apierrors.ApiError) as caught:
        admission.validate(POD_TYPE, pod)
    assert caught.value.code == 422
    return [(c["field"], c["message"]) for c in (caught.value.details or {})["causes"]]


# ------------------------------------------------------------------ admission


def test_a_volume_name_that_is_a_path_is_refused_with_kubes_message() -> None:
    causes = _causes(_pod(volumes=[{"name": "/etc/cron.d", "configMap": {"name": "x"}}]))
    assert causes[0][0] == "spec.volumes[0].name"
    assert causes[0][1].startswith(
        'Invalid value: "/etc/cron.d": a lowercase RFC 1123 label must consist of lower case '
        "alphanumeric characters or '-', and must start and end with an alphanumeric character"
    )


def test_init_container_names_are_labels_too() -> None:
    causes = _causes(_pod(initContainers=[{"name": "../escape", "image": "busybox"}]))
    assert [field for field, _ in causes] == ["spec.initContainers[0].name"]


@pytest.mark.parametrize(
    ("volume", "mount", "field", "message"),
    [
        (
            {"emptyDir": {}},
            {"subPath": "../up"},
            "spec.containers[0].volumeMounts[0].subPath",
            "must not contain '..'",
        ),
        (
            {"emptyDir": {}},
            {"subPath": "/abs"},
            "spec.containers[0].volumeMounts[0].subPath",
            "must be a relative path",
        ),
        (
            {"emptyDir": {}},
            {"subPathExpr": "$(A)/../b"},
            "spec.containers[0].volumeMounts[0].subPathExpr",
            "must not contain '..'",
        ),
        (
            {"hostPath": {"path": "relative/dir"}},
            {},
            "spec.volumes[0].hostPath.path",
            "must be an absolute path",
        ),
        (
            {"hostPath": {"path": "/a/../../etc"}},
            {},
            "spec.volumes[0].hostPath.path",
            "must not contain '..'",
        ),
        (
            {"configMap": {"name": "c", "items": [{"key": "k", "path": "../../cron"}]}},
            {},
            "spec.volumes[0].configMap.items[0].path",
            "must not contain '..'",
        ),
        (
            {"secret": {"secretName": "s", "items": [{"key": "k", "path": "/etc/passwd"}]}},
            {},
            "spec.volumes[0].secret.items[0].path",
            "must be a relative path",
        ),
        (
            {"projected": {"sources": [{"serviceAccountToken": {"path": "../token"}}]}},
            {},
            "spec.volumes[0].projected.sources[0].serviceAccountToken.path",
            "must not contain '..'",
        ),
        (
            {"emptyDir": {}, "hostPath": {"path": "/x"}},
            {},
            "spec.volumes[0]",
            "may not specify more than 1 volume type",
        ),
        ({}, {}, "spec.volumes[0]", "must specify a volume type"),
        (
            {"persistentVolumeClaim": "claim"},
            {},
            "spec.volumes[0].persistentVolumeClaim",
            "must be an object",
        ),
    ],
)
def test_paths_in_volumes_and_mounts_must_stay_inside(
    volume: JsonObject, mount: JsonObject, field: str, message: str
) -> None:
    container = {"name": "c", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/v", **mount}]}
    causes = _causes(_pod(containers=[container], volumes=[{"name": "v", **volume}]))
    assert any(f == field and message in m for f, m in causes), causes


def test_a_mount_of_an_unknown_volume_is_not_found() -> None:
    container = {"name": "c", "image": "busybox", "volumeMounts": [{"name": "nope", "mountPath": "/v"}]}
    causes = _causes(_pod(containers=[container]))
    assert causes == [("spec.containers[0].volumeMounts[0].name", 'Not found: "nope"')]


def test_a_well_formed_pod_with_volumes_passes() -> None:
    container = {
        "name": "c",
        "image": "busybox",
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "data", "mountPath": "/data", "subPathExpr": "$(POD_NAME)"},
        ],
    }
    admission.validate(
        POD_TYPE,
        _pod(
            containers=[container],
            volumes=[
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "k", "path": "app.conf"}]}},
                {"name": "data", "hostPath": {"path": "/srv/data"}},
            ],
        ),
    )


# ------------------------------------------------------------- kubelet paths


def test_joined_paths_never_leave_their_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "inside").mkdir(parents=True)
    (base / "out").symlink_to(tmp_path)
    assert contained(base, "inside/file", "subPath") == base / "inside" / "file"
    for bad in ("/etc/cron.d", "../x", "a/../../x", "out/elsewhere"):
        with pytest.raises(PathEscape):
            contained(base, bad, "subPath")
    assert contained(base, "out/x", "subPath", also=[tmp_path]) == base / "out" / "x"
    for bad_name in ("", ".", "..", "/etc", "a/b"):
        with pytest.raises(PathEscape):
            path_segment(bad_name, "volume name")
    with pytest.raises(PathEscape):
        container_rootfs(tmp_path, "uid", "/etc")


def test_a_sub_path_naming_a_file_binds_the_file_and_a_missing_one_becomes_a_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.conf").write_text("x")
    assert _sub_path(tmp_path, "app.conf", []) == tmp_path / "app.conf"
    assert (tmp_path / "app.conf").read_text() == "x"
    made = _sub_path(tmp_path, "a/b", [])
    assert made.is_dir()
    with pytest.raises(ConfigError, match="subPath"):
        _sub_path(tmp_path, "../escape", [])


def test_projected_files_are_written_inside_only(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    _write_files(volume, {"token": b"t1", "../evil": b"x", "/abs": b"y"}, 0o600)
    assert (volume / "token").read_bytes() == b"t1"
    assert not (tmp_path / "evil").exists()
    assert not Path("/abs").exists()
    assert oct((volume / "token").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in volume.iterdir()) == ["token"]


class FakeKubelets:
    """What Volumes needs of the kubelets: objects by name, the sandbox directory, tokens."""

    def __init__(self, sandbox_dir: Path, objects: dict[tuple[str, str], JsonObject]) -> None:
        self.sandbox_dir = sandbox_dir
        self.objects = objects
        self.ca_pem = "CA"
        self.issued = 0

    async def get(self, resource: str, namespace: str | None, name: str) -> JsonObject | None:
        return self.objects.get((resource, name))

    async def pod_token(self, pod: JsonObject, source: JsonObject) -> str:
        self.issued += 1
        return f"token-{self.issued}"


def _claim_objects(pv_spec: JsonObject) -> dict[tuple[str, str], JsonObject]:
    return {
        ("persistentvolumeclaims", "data"): {
            "spec": {"volumeName": "pv-1"},
            "status": {"phase": "Bound"},
        },
        ("persistentvolumes", "pv-1"): {"spec": pv_spec},
    }


def _volumes(tmp_path: Path, objects: dict[tuple[str, str], JsonObject]) -> tuple[Volumes, FakeKubelets]:
    fake = FakeKubelets(tmp_path / "sandbox", objects)
    return Volumes(fake), fake  # type: ignore[arg-type]


@run_async
async def test_a_volume_named_like_a_host_path_is_not_mounted(tmp_path: Path) -> None:
    volumes, _ = _volumes(tmp_path, {("configmaps", "c"): {"data": {"k": "v"}}})
    target = tmp_path / "host-cron"
    pod = _pod(volumes=[{"name": str(target), "configMap": {"name": "c"}}])
    with pytest.raises(VolumeNotReady, match="single path segment"):
        await volumes.prepare(pod, tmp_path / "node")
    assert not target.exists()


@run_async
async def test_a_pod_host_path_lies_under_the_node_root(tmp_path: Path) -> None:
    volumes, _ = _volumes(tmp_path, {})
    root = tmp_path / "node"
    pod = _pod(volumes=[{"name": "h", "hostPath": {"path": "/var/log/app", "type": "DirectoryOrCreate"}}])
    paths = await volumes.prepare(pod, root)
    assert paths["h"] == root / "var/log/app"
    assert paths["h"].is_dir()


@pytest.mark.parametrize(
    "pv_spec",
    [
        {"csi": {"driver": HOSTPATH_DRIVER, "volumeHandle": "../../etc"}},
        {"csi": {"driver": HOSTPATH_DRIVER, "volumeHandle": "missing"}},
        {"hostPath": {"path": "/nonexistent/strongroom-test/dir"}},
        {"hostPath": {"path": "relative"}},
    ],
)
@run_async
async def test_a_persistent_volume_without_a_valid_existing_directory_is_not_ready(
    tmp_path: Path, pv_spec: JsonObject
) -> None:
    volumes, fake = _volumes(tmp_path, _claim_objects(pv_spec))
    pod = _pod(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(VolumeNotReady, match=r"MountVolume\.SetUp failed"):
        await volumes.prepare(pod, tmp_path / "node")
    assert not Path("/nonexistent").exists()
    assert not (fake.sandbox_dir / "volumes").exists()


@run_async
async def test_existing_persistent_volume_directories_are_linked(tmp_path: Path) -> None:
    existing = tmp_path / "static-pv"
    existing.mkdir()
    for pv_spec, target in (
        ({"hostPath": {"path": str(existing)}}, existing),
        ({"csi": {"driver": HOSTPATH_DRIVER, "volumeHandle": "h1"}}, volume_dir(tmp_path / "sandbox", "h1")),
    ):
        target.mkdir(parents=True, exist_ok=True)
        volumes, _ = _volumes(tmp_path, _claim_objects(pv_spec))
        pod = _pod(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
        paths = await volumes.prepare(pod, tmp_path / "node")
        assert paths["d"].resolve() == target.resolve()


@run_async
async def test_refreshing_rewrites_the_projected_token(tmp_path: Path) -> None:
    volumes, fake = _volumes(tmp_path, {})
    source = {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    pod = _pod(volumes=[{"name": "kube-api-access-x", "projected": {"sources": [source]}}])
    root = tmp_path / "node"
    paths = await volumes.prepare(pod, root)
    token = paths["kube-api-access-x"] / "token"
    assert token.read_text() == "token-1"
    await volumes.refresh_tokens(pod, root)
    assert token.read_text() == "token-2"
    assert fake.issued == 2


def test_tokens_renew_at_eighty_percent_of_the_requested_lifetime() -> None:
    pod = _pod(
        volumes=[
            {"name": "a", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607}}]}},
            {"name": "b", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 7200}}]}},
            {"name": "c", "emptyDir": {}},
        ]
    )
    assert projected_token_lifetimes(pod) == [3607, 7200]
    delay = token_refresh_delay(projected_token_lifetimes(pod))
    assert delay == pytest.approx(0.8 * 3607)
    assert token_refresh_delay(projected_token_lifetimes(_pod())) is None


def test_pod_bound_tokens_of_the_admission_lifetime_are_extended_to_a_year(tmp_path: Path) -> None:
    assert pod_token_lifetime(3607, [ISSUER]) == EXTENDED_EXPIRATION == 365 * 24 * 3600
    assert pod_token_lifetime(3600, [ISSUER]) == 3600
    assert pod_token_lifetime(3607, ["vault"]) == 3607
    issuer = TokenIssuer(tmp_path)
    token, expires = issuer.issue(
        namespace="ns",
        name="default",
        uid="u",
        audiences=[ISSUER],
        expiration_seconds=pod_token_lifetime(3607, [ISSUER]),
        now=1000,
    )
    # Two hours on, long after the requested hour, the token still authenticates.
    assert issuer.verify(token, now=1000 + 7200) is not None
    assert expires == 1000 + EXTENDED_EXPIRATION


# ------------------------------------------------------------------- HOME


class EnvKubelets:
    api_port = 6443

    async def get(self, resource: str, namespace: str | None, name: str) -> JsonObject | None:
        return None


@pytest.mark.parametrize(
    ("image", "env", "home"),
    [
        ("strongroom/strongroom:1", [], "/tmp"),
        ("busybox", [], "/root"),
        ("strongroom/strongroom:1", [{"name": "HOME", "value": "/home/app"}], "/home/app"),
    ],
)
@run_async
async def test_home_is_tmp_for_strongroom_images_unless_the_pod_sets_it(
    image: str, env: list[JsonObject], home: str
) -> None:
    container = {"name": "c", "image": image, "env": env}
    result = await Kubelets._environment(EnvKubelets(), _pod(), container)  # type: ignore[arg-type]
    assert result["HOME"] == home


def test_the_hosts_root_home_is_not_shared_with_strongroom_pods(tmp_path: Path) -> None:
    for name in ("root", "home", "srv"):
        (tmp_path / name).mkdir()
    assert [p.name for p in host_view_paths(tmp_path)] == ["home", "srv"]


# -------------------------------------------------------------- processes


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@run_async
async def test_killing_an_exec_session_kills_what_its_command_started() -> None:
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 287; true", start_new_session=True, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while not _children_of(process.pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    children = _children_of(process.pid)
    assert children, "the shell started no sleep"
    _kill(process)
    await process.wait()
    deadline = time.monotonic() + 5
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not any(_alive(c) for c in children)


# -------------------------------------------------------------- scheduler


class _Engine:
    clock = staticmethod(lambda: None)


class RecordingScheduler(Scheduler):
    """A scheduler over fixed pods and nodes that records bindings instead of writing them."""

    def __init__(self, pods: list[JsonObject], nodes: list[JsonObject]) -> None:
        super().__init__(_Engine())  # type: ignore[arg-type]
        self.pods, self.nodes = pods, nodes
        self.bound: list[tuple[str, str]] = []
        self.reports: list[str] = []

    async def _list(self, resource: str, namespace: str | None = None) -> list[JsonObject]:
        return self.pods if resource == "pods" else self.nodes

    async def _volume_affinities(self, pod: JsonObject) -> list[JsonObject]:
        if pod["metadata"]["name"] == "broken":
            raise TypeError("'str' object has no attribute 'get'")
        return []

    async def _bind(self, namespace: str, name: str, node: str) -> None:
        self.bound.append((name, node))

    async def _report(self, pod: JsonObject, message: str) -> None:
        self.reports.append(message)

    async def _event(self, pod: JsonObject, kind: str, reason: str, message: str) -> None:
        pass


@run_async
async def test_one_pod_that_breaks_scheduling_does_not_stop_the_others() -> None:
    def pending(name: str) -> JsonObject:
        return {"metadata": {"name": name, "namespace": "ns", "uid": name}, "spec": {"containers": [{}]}}

    node = {
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    scheduler = RecordingScheduler([pending("broken"), pending("fine")], [node])
    await scheduler.sync_once()
    assert scheduler.bound == [("fine", "n1")]
    assert len(scheduler.reports) == 1
    assert "scheduling failed" in scheduler.reports[0]
