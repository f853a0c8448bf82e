"""The pure parts of running a sandbox container: commands, bubblewrap arguments, CRI logs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from strongroom.sandbox.containers import (
    IDLE_COMMAND,
    LogLine,
    Mount,
    SandboxSpec,
    bwrap_argv,
    container_argv,
    expand_references,
    format_log_line,
    host_view_paths,
    is_strongroom_image,
    parse_log_line,
    parse_rfc3339,
    prepare_rootfs,
    python_paths,
    render_log,
    select_log_lines,
    system_binds,
)
from strongroom.sandbox.runtime import LogOptions

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("strongroom/strongroom:0.1.0", True),
        ("quay.io/x/strongroom@sha256:" + "a" * 64, True),
        ("strongroom", True),
        ("registry:5000/team/strongroom:latest", True),
        ("registry:5000/strongroom-tools:1", False),
        ("busybox", False),
        ("strongroom/other:1", False),
    ],
)
def test_strongroom_images_are_recognised_by_their_last_path_component(image: str, expected: bool) -> None:
    assert is_strongroom_image(image) is expected


def test_references_expand_like_kubelet() -> None:
    env = {"A": "1", "NODE_NAME": "sandbox-node-1"}
    assert expand_references("--node=$(NODE_NAME)", env) == "--node=sandbox-node-1"
    assert expand_references("$(A)-$(MISSING)", env) == "1-$(MISSING)"
    assert expand_references("$$(A) and $$$$", env) == "$(A) and $$"
    assert expand_references("$A $(", env) == "$A $("


def test_the_strongroom_image_runs_the_local_strongroom_with_its_arguments() -> None:
    env = {"NODE_NAME": "n1"}
    server = {"image": "strongroom/strongroom:0.1.0", "command": ["strongroom"], "args": ["server", "--x=1"]}
    assert container_argv(server, env) == [sys.executable, "-m", "strongroom", "server", "--x=1"]
    agent = {
        "image": "strongroom:1",
        "command": ["/strongroom", "node-agent"],
        "args": ["--node=$(NODE_NAME)"],
    }
    assert container_argv(agent, env) == [sys.executable, "-m", "strongroom", "node-agent", "--node=n1"]
    bare = {"image": "strongroom:1", "args": ["version"]}
    assert container_argv(bare, env) == [sys.executable, "-m", "strongroom", "version"]
    shell = {"image": "strongroom:1", "command": ["sh", "-c", "true"]}
    assert container_argv(shell, env) == ["sh", "-c", "true"]


def test_other_images_run_their_command_or_idle() -> None:
    assert container_argv(
        {"image": "busybox", "command": ["sh", "-c"], "args": ["echo $(X)"]}, {"X": "y"}
    ) == [
        "sh",
        "-c",
        "echo y",
    ]
    assert container_argv({"image": "nginx"}, {}) == IDLE_COMMAND
    assert container_argv({"image": "busybox", "args": ["sleep", "5"]}, {}) == ["sleep", "5"]


def test_bwrap_arguments_bind_the_root_system_dirs_and_mounts_in_depth_order(tmp_path: Path) -> None:
    spec = SandboxSpec(
        rootfs=tmp_path / "rootfs",
        argv=["sh", "-c", "echo hi"],
        env={"A": "1"},
        working_dir="/work",
        mounts=[
            Mount(tmp_path / "inner", "/data/inner", read_only=True),
            Mount(tmp_path / "outer", "/data"),
        ],
        read_only_paths=[Path("/opt/python")],
    )
    argv = bwrap_argv(spec, bwrap="bwrap")
    assert argv[:4] == ["bwrap", "--bind", str(tmp_path / "rootfs"), "/"]
    joined = " ".join(argv)
    for piece in ("--ro-bind /usr /usr", "--ro-bind /etc /etc", "--proc /proc", "--dev /dev", "--tmpfs /tmp"):
        assert piece in joined
    assert "--ro-bind /opt/python /opt/python" in joined
    outer = argv.index(str(tmp_path / "outer"))
    inner = argv.index(str(tmp_path / "inner"))
    assert argv[outer - 1 : outer + 2] == ["--bind", str(tmp_path / "outer"), "/data"]
    assert argv[inner - 1 : inner + 2] == ["--ro-bind", str(tmp_path / "inner"), "/data/inner"]
    assert outer < inner
    assert argv.index("--tmpfs") < outer
    assert argv[argv.index("--chdir") + 1] == "/work"
    assert "--die-with-parent" in argv and "--clearenv" in argv
    assert argv[argv.index("--setenv") : argv.index("--setenv") + 3] == ["--setenv", "A", "1"]
    assert argv[argv.index("--") + 1 :] == ["sh", "-c", "echo hi"]


def test_strongroom_pods_see_the_hosts_files_under_their_own_mounts(tmp_path: Path) -> None:
    spec = SandboxSpec(
        rootfs=tmp_path / "rootfs",
        argv=["strongroom", "server"],
        env={},
        mounts=[Mount(tmp_path / "pods", "/host_pods")],
        host_view=True,
    )
    argv = bwrap_argv(spec, bwrap="bwrap")
    joined = " ".join(argv)
    assert "--tmpfs" not in argv and "--bind /tmp /tmp" in joined
    shared = host_view_paths()
    assert shared and all(path.is_dir() for path in shared)
    assert not {"proc", "dev", "sys", "usr", "etc", "tmp"} & {path.name for path in shared}
    for path in shared:
        assert argv.index(str(path)) < argv.index("/host_pods")
    # Everything else keeps its own /tmp and sees nothing of the host's directories.
    other = bwrap_argv(SandboxSpec(rootfs=tmp_path / "rootfs", argv=["sh"], env={}), bwrap="bwrap")
    assert "--tmpfs" in other and not any(str(path) in other for path in shared)


def test_host_view_paths_leave_out_symlinks_and_system_directories(tmp_path: Path) -> None:
    for name in ("work", "srv", "proc", "usr"):
        (tmp_path / name).mkdir()
    (tmp_path / "lib").symlink_to("usr")
    (tmp_path / "file").write_text("x")
    assert [path.name for path in host_view_paths(tmp_path)] == ["srv", "work"]


def test_rootfs_gets_mount_points_and_the_usr_symlinks_once(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    prepare_rootfs(root)
    prepare_rootfs(root)  # a restart finds them in place
    assert (root / "bin").readlink() == Path("usr/bin")
    assert (root / "lib64").readlink() == Path("usr/lib64")
    assert all((root / name).is_dir() for name in ("usr", "etc", "proc", "dev", "tmp"))


def test_python_paths_cover_the_interpreter_without_nesting() -> None:
    paths = python_paths()
    assert any(Path(sys.prefix).resolve() == p or p in Path(sys.prefix).resolve().parents for p in paths)
    for path in paths:
        assert not any(other in path.parents for other in paths)
        assert not str(path).startswith("/usr/")


def test_log_lines_round_trip_in_the_cri_format() -> None:
    raw = format_log_line(1_700_000_000 * SECOND + 123, "stderr", b"boom here")
    assert raw == b"2023-11-14T22:13:20.000000123Z stderr F boom here\n"
    line = parse_log_line(raw)
    assert line == LogLine(1_700_000_000 * SECOND + 123, "stderr", False, b"boom here")
    partial = parse_log_line(format_log_line(SECOND, "stdout", b"no newline", partial=True))
    assert partial is not None and partial.partial
    assert parse_log_line(b"garbage") is None
    assert parse_rfc3339("2023-11-14T23:13:20.5+01:00") == 1_700_000_000 * SECOND + SECOND // 2


def _lines(*contents: str, start: int = 100) -> list[LogLine]:
    return [LogLine((start + i) * SECOND, "stdout", False, c.encode()) for i, c in enumerate(contents)]


def test_tail_and_since_select_lines_like_kubelet() -> None:
    lines = _lines("a", "b", "c", "d")
    now = 104 * SECOND
    assert [x.content for x in select_log_lines(lines, LogOptions(tail_lines=2), now)] == [b"c", b"d"]
    assert select_log_lines(lines, LogOptions(tail_lines=0), now) == []
    assert [x.content for x in select_log_lines(lines, LogOptions(tail_lines=10), now)] == [
        b"a",
        b"b",
        b"c",
        b"d",
    ]
    assert [x.content for x in select_log_lines(lines, LogOptions(since_seconds=2), now)] == [b"c", b"d"]
    both = select_log_lines(lines, LogOptions(since_seconds=3, tail_lines=1), now)
    assert [x.content for x in both] == [b"d"]


def test_a_partial_line_belongs_to_the_full_line_after_it() -> None:
    lines = [
        LogLine(1, "stdout", False, b"first"),
        LogLine(2, "stdout", True, b"sec"),
        LogLine(3, "stdout", False, b"ond"),
    ]
    chosen = select_log_lines(lines, LogOptions(tail_lines=1), 10)
    assert render_log(chosen, timestamps=False) == b"second\n"


def test_rendering_adds_timestamps_on_request() -> None:
    lines = _lines("x", "y")
    assert render_log(lines, timestamps=False) == b"x\ny\n"
    assert render_log(lines[:1], timestamps=True) == b"1970-01-01T00:01:40.000000000Z x\n"


def test_mounts_under_read_only_system_directories_get_their_own_mount_points(tmp_path: Path) -> None:
    host = tmp_path / "usr"
    (host / "bin").mkdir(parents=True)
    (host / "share" / "doc").mkdir(parents=True)
    (host / "lib64").symlink_to("lib")
    argv = system_binds(host, [f"{host}/share/nginx/html", "/data"])
    text = " ".join(argv)
    # The path to the mount is the container's own; everything beside it is the host's, read-only.
    assert argv[:2] == ["--dir", str(host)]
    assert f"--ro-bind {host}/bin {host}/bin" in text
    assert f"--dir {host}/share" in text and f"--ro-bind {host}/share/doc {host}/share/doc" in text
    assert f"--symlink lib {host}/lib64" in text
    assert f"--ro-bind {host}/share {host}/share" not in text
    # Without a mount inside it, the directory is bound whole.
    assert system_binds(host, ["/data"]) == ["--ro-bind", str(host), str(host)]


def test_a_host_view_keeps_shared_directories_writable_under_python_paths(tmp_path: Path) -> None:
    shared = host_view_paths()
    inside = shared[0] / "project" / "src"
    spec = SandboxSpec(
        rootfs=tmp_path / "rootfs",
        argv=["python"],
        env={},
        read_only_paths=[inside, Path("/usr/local/python-elsewhere")],
        host_view=True,
    )
    argv = bwrap_argv(spec, bwrap="bwrap")
    assert str(inside) not in argv
    assert "--ro-bind /usr/local/python-elsewhere /usr/local/python-elsewhere" in " ".join(argv)
