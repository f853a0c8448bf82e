"""Backup pre/post exec hooks: which hooks a pod gets, and what running them does (Velero's rules)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.runasync import run_async
from tests.unit.hooks.fakes import FakeExecutor, RecordingLog, pod

from strongroom.hooks import (
    ANNOTATION_HOOK_NAME,
    BackupHookRunner,
    ExecOutcome,
    HookError,
    HookSource,
    HookSpecError,
    HookTimeout,
)
from strongroom.kube import KubeUnavailable
from strongroom.model.filters import ResourceCatalog
from strongroom.model.resources import ApiResource
from strongroom.model.velero import BackupHooks, HookErrorMode, HookStatus


def hooks(*specs: dict[str, Any]) -> BackupHooks:
    return BackupHooks.model_validate({"resources": list(specs)})


def spec(
    name: str = "freeze", *, pre: list[Any] | None = None, post: list[Any] | None = None, **filters: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **filters}
    if pre is not None:
        body["pre"] = [{"exec": e} for e in pre]
    if post is not None:
        body["post"] = [{"exec": e} for e in post]
    return body


def runner(
    backup_hooks: BackupHooks | None, executor: FakeExecutor | None = None, **kwargs: Any
) -> BackupHookRunner:
    return BackupHookRunner(backup_hooks, executor or FakeExecutor(), RecordingLog(), **kwargs)


# --- resolution ---------------------------------------------------------------------


def test_spec_hook_defaults_to_first_container_fail_and_30s() -> None:
    chosen = runner(hooks(spec(pre=[{"command": ["/sbin/fsfreeze", "--freeze", "/data"]}]))).hooks_for(
        "pre", pod(containers=["db", "sidecar"])
    )
    assert len(chosen) == 1
    hook = chosen[0]
    assert (hook.name, hook.source, hook.container, hook.command) == (
        "freeze",
        HookSource.SPEC,
        "db",
        ("/sbin/fsfreeze", "--freeze", "/data"),
    )
    assert hook.on_error == HookErrorMode.FAIL
    assert hook.timeout == 30.0


def test_spec_hook_keeps_its_container_on_error_and_timeout() -> None:
    hook = runner(
        hooks(
            spec(
                post=[
                    {"container": "sidecar", "command": ["true"], "onError": "Continue", "timeout": "2m30s"}
                ]
            )
        )
    ).hooks_for("post", pod(containers=["db", "sidecar"]))[0]
    assert (hook.container, hook.on_error, hook.timeout) == ("sidecar", HookErrorMode.CONTINUE, 150.0)


def test_pre_and_post_lists_are_separate() -> None:
    backup_hooks = hooks(spec(pre=[{"command": ["a"]}, {"command": ["b"]}], post=[{"command": ["c"]}]))
    chosen = runner(backup_hooks)
    assert [h.command for h in chosen.hooks_for("pre", pod())] == [("a",), ("b",)]
    assert [(h.command, h.index) for h in chosen.hooks_for("post", pod())] == [(("c",), 0)]


def test_hooks_of_every_matching_spec_run_in_spec_order() -> None:
    backup_hooks = hooks(spec("one", pre=[{"command": ["a"]}]), spec("two", pre=[{"command": ["b"]}]))
    assert [h.name for h in runner(backup_hooks).hooks_for("pre", pod())] == ["one", "two"]


def test_annotation_hook_replaces_spec_hooks_of_its_phase_only() -> None:
    annotated = pod(
        containers=["app", "fsfreeze"],
        annotations={
            "pre.hook.backup.velero.io/command": '["/sbin/fsfreeze", "--freeze", "/var/log/nginx"]',
            "pre.hook.backup.velero.io/container": "fsfreeze",
        },
    )
    chosen = runner(hooks(spec(pre=[{"command": ["spec-pre"]}], post=[{"command": ["spec-post"]}])))
    pre = chosen.hooks_for("pre", annotated)
    assert [(h.name, h.source, h.container, h.command) for h in pre] == [
        (
            ANNOTATION_HOOK_NAME,
            HookSource.ANNOTATION,
            "fsfreeze",
            ("/sbin/fsfreeze", "--freeze", "/var/log/nginx"),
        )
    ]
    assert [h.command for h in chosen.hooks_for("post", annotated)] == [("spec-post",)]


def test_unphased_annotations_are_pre_hooks_only() -> None:
    legacy = pod(annotations={"hook.backup.velero.io/command": "/bin/sync"})
    chosen = runner(None)
    assert [h.command for h in chosen.hooks_for("pre", legacy)] == [("/bin/sync",)]
    assert chosen.hooks_for("post", legacy) == []


def test_phased_annotation_wins_over_unphased_one() -> None:
    both = pod(
        annotations={"hook.backup.velero.io/command": "old", "pre.hook.backup.velero.io/command": "new"}
    )
    assert [h.command for h in runner(None).hooks_for("pre", both)] == [("new",)]


@pytest.mark.parametrize(
    ("value", "command"),
    [
        ('["/bin/sh", "-c", "echo hi > /tmp/x"]', ("/bin/sh", "-c", "echo hi > /tmp/x")),
        ("/sbin/fsfreeze --freeze /data", ("/sbin/fsfreeze --freeze /data",)),
        ("[not json", ("[not json",)),
        ("[1, 2]", ("[1, 2]",)),
    ],
)
def test_annotation_command_is_a_json_array_or_one_string(value: str, command: tuple[str, ...]) -> None:
    chosen = runner(None).hooks_for("post", pod(annotations={"post.hook.backup.velero.io/command": value}))
    assert chosen[0].command == command


def test_annotation_defaults_and_values() -> None:
    chosen = runner(None)
    plain = chosen.hooks_for(
        "pre", pod(containers=["a", "b"], annotations={"pre.hook.backup.velero.io/command": "x"})
    )[0]
    assert (plain.container, plain.on_error, plain.timeout) == ("a", HookErrorMode.FAIL, 30.0)
    tuned = chosen.hooks_for(
        "pre",
        pod(
            annotations={
                "pre.hook.backup.velero.io/command": "x",
                "pre.hook.backup.velero.io/on-error": "Continue",
                "pre.hook.backup.velero.io/timeout": "1m",
            }
        ),
    )[0]
    assert (tuned.on_error, tuned.timeout) == (HookErrorMode.CONTINUE, 60.0)


def test_unparsable_annotation_values_fall_back_to_defaults_with_warnings() -> None:
    log = RecordingLog()
    chosen = BackupHookRunner(None, FakeExecutor(), log).hooks_for(
        "pre",
        pod(
            annotations={
                "pre.hook.backup.velero.io/command": "x",
                "pre.hook.backup.velero.io/on-error": "continue",
                "pre.hook.backup.velero.io/timeout": "ten seconds",
            }
        ),
    )[0]
    assert (chosen.on_error, chosen.timeout) == (HookErrorMode.FAIL, 30.0)
    warnings = log.at("warning")
    assert any("pre.hook.backup.velero.io/on-error" in w for w in warnings)
    assert any("pre.hook.backup.velero.io/timeout" in w and "invalid duration" in w for w in warnings)


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        ({}, True),
        ({"includedNamespaces": ["shop"]}, True),
        ({"includedNamespaces": ["sh*"]}, True),
        ({"includedNamespaces": ["other"]}, False),
        ({"excludedNamespaces": ["shop"]}, False),
        ({"includedNamespaces": ["*"], "excludedNamespaces": ["s?op"]}, False),
        ({"includedResources": ["pods"]}, True),
        ({"includedResources": ["pod"]}, True),
        ({"includedResources": ["po"]}, True),
        ({"includedResources": ["Pod"]}, True),
        ({"includedResources": ["*"]}, True),
        ({"includedResources": ["deployments"]}, False),
        ({"excludedResources": ["po"]}, False),
        ({"excludedResources": ["*"]}, True),
        ({"labelSelector": {"matchLabels": {"app": "web"}}}, True),
        ({"labelSelector": {"matchLabels": {"app": "db"}}}, False),
        (
            {"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}},
            True,
        ),
        ({"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}, False),
    ],
)
def test_spec_filters_select_pods_as_velero_does(filters: dict[str, Any], selected: bool) -> None:
    chosen = runner(hooks(spec(pre=[{"command": ["x"]}], **filters))).hooks_for(
        "pre", pod(namespace="shop", labels={"app": "web"})
    )
    assert bool(chosen) is selected


def test_resource_names_resolve_through_the_given_catalog() -> None:
    catalog = ResourceCatalog(
        [
            ApiResource("", "v1", "pods", "Pod", True, singular="pod", short_names=("po",)),
            ApiResource(
                "apps",
                "v1",
                "deployments",
                "Deployment",
                True,
                singular="deployment",
                short_names=("deploy",),
            ),
        ]
    )
    deploy_only = runner(hooks(spec(pre=[{"command": ["x"]}], includedResources=["deploy"])), catalog=catalog)
    not_deploy = runner(hooks(spec(pre=[{"command": ["x"]}], excludedResources=["deploy"])), catalog=catalog)
    assert deploy_only.hooks_for("pre", pod()) == []
    assert len(not_deploy.hooks_for("pre", pod())) == 1


def test_invalid_label_selector_is_a_clear_error() -> None:
    bad = hooks(spec(pre=[{"command": ["x"]}], labelSelector={"matchLabels": {"bad key!": "v"}}))
    with pytest.raises(HookSpecError, match="hook spec 'freeze': invalid labelSelector"):
        runner(bad)


def test_unknown_phase_is_a_clear_error() -> None:
    with pytest.raises(HookError, match="unknown backup hook phase 'during'"):
        runner(None).hooks_for("during", pod())


# --- running -------------------------------------------------------------------------


@run_async
async def test_hooks_run_in_order_in_the_pod() -> None:
    executor = FakeExecutor()
    hook_runner = runner(
        hooks(spec(pre=[{"command": ["a"]}, {"command": ["b"], "container": "side", "timeout": "5s"}])),
        executor,
    )
    failures = await hook_runner.run("pre", pod(containers=["app", "side"]))
    assert failures == []
    assert [(c.namespace, c.pod, c.container, c.command, c.timeout) for c in executor.calls] == [
        ("shop", "web-0", "app", ("a",), 30.0),
        ("shop", "web-0", "side", ("b",), 5.0),
    ]
    assert hook_runner.hook_status() == HookStatus(hooks_attempted=2)


@run_async
async def test_fail_stops_the_remaining_hooks_of_the_phase() -> None:
    executor = FakeExecutor(script={"b": ExecOutcome(3, stderr=b"boom")})
    hook_runner = runner(
        hooks(spec(pre=[{"command": ["a"]}, {"command": ["b"]}, {"command": ["c"]}])), executor
    )
    failures = await hook_runner.run("pre", pod())
    assert executor.commands == ["a", "b"]
    assert len(failures) == 1
    failure = failures[0]
    assert failure.fatal
    assert (failure.namespace, failure.pod, failure.hook_name, failure.container, failure.command) == (
        "shop",
        "web-0",
        "freeze",
        "app",
        ("b",),
    )
    assert failure.exit_code == 3
    assert failure.message == (
        "pre-backup hook freeze in container app of pod shop/web-0 failed: command terminated with exit code 3"
    )
    # Velero's backup tracker: every chosen hook is attempted; the unrun one is not failed.
    assert hook_runner.tracker.stat() == (3, 1)


@run_async
async def test_continue_runs_the_remaining_hooks_and_is_a_warning() -> None:
    executor = FakeExecutor(script={"a": ExecOutcome(1)})
    log = RecordingLog()
    hook_runner = BackupHookRunner(
        hooks(spec(post=[{"command": ["a"], "onError": "Continue"}, {"command": ["b"]}])), executor, log
    )
    failures = await hook_runner.run("post", pod())
    assert executor.commands == ["a", "b"]
    assert [(f.fatal, f.phase) for f in failures] == [(False, "post")]
    assert failures[0].message.startswith("post-backup hook freeze")
    assert any("exit code 1" in line for line in log.at("warning"))
    assert log.at("error") == []
    assert hook_runner.tracker.stat() == (2, 1)


@run_async
async def test_a_hanging_command_fails_at_its_timeout() -> None:
    executor = FakeExecutor(default="hang")
    failures = await runner(hooks(spec(pre=[{"command": ["sleep"], "timeout": "20ms"}])), executor).run(
        "pre", pod()
    )
    assert [f.error for f in failures] == ["timed out after 20ms"]
    assert failures[0].exit_code is None


@run_async
async def test_executor_timeout_and_api_errors_are_hook_failures() -> None:
    executor = FakeExecutor(
        script={
            "slow": HookTimeout("timed out"),
            "gone": KubeUnavailable("the API server did not answer"),
        }
    )
    failures = await runner(
        hooks(spec(pre=[{"command": ["slow"], "onError": "Continue"}, {"command": ["gone"]}])), executor
    ).run("pre", pod())
    assert [f.error for f in failures] == ["timed out after 30s", "the API server did not answer"]


@run_async
async def test_missing_container_fails_the_hook_without_running_it() -> None:
    executor = FakeExecutor()
    failures = await runner(hooks(spec(pre=[{"command": ["x"], "container": "nope"}])), executor).run(
        "pre", pod()
    )
    assert executor.calls == []
    assert [f.error for f in failures] == ['no such container: "nope"']


@run_async
async def test_sidecar_init_containers_can_run_hooks() -> None:
    executor = FakeExecutor()
    with_sidecar = pod(
        init_containers=[
            {"name": "setup", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
        ]
    )
    hook_runner = runner(
        hooks(spec(pre=[{"command": ["x"], "container": "proxy"}, {"command": ["y"], "container": "setup"}])),
        executor,
    )
    failures = await hook_runner.run("pre", with_sidecar)
    assert executor.commands == ["x"]
    assert [f.error for f in failures] == ['no such container: "setup"']


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed", "Unknown", None])
@run_async
async def test_pods_not_running_are_skipped_with_a_log_line(phase: str | None) -> None:
    executor = FakeExecutor()
    log = RecordingLog()
    hook_runner = BackupHookRunner(hooks(spec(pre=[{"command": ["x"]}])), executor, log)
    failures = await hook_runner.run("pre", pod(phase=phase))
    assert failures == []
    assert executor.calls == []
    assert any("not Running" in line for line in log.at("info"))
    assert hook_runner.tracker.stat() == (1, 0)


@run_async
async def test_pods_without_hooks_run_nothing_and_count_nothing() -> None:
    executor = FakeExecutor()
    hook_runner = runner(hooks(spec(pre=[{"command": ["x"]}], includedNamespaces=["other"])), executor)
    assert await hook_runner.run("pre", pod()) == []
    assert executor.calls == []
    assert hook_runner.hook_status() == HookStatus()


@run_async
async def test_output_goes_to_the_log_bounded() -> None:
    executor = FakeExecutor(default=ExecOutcome(0, stdout=b"x" * 10_000, stderr=b"warning: slow disk"))
    log = RecordingLog()
    await BackupHookRunner(hooks(spec(pre=[{"command": ["dump"]}])), executor, log).run("pre", pod())
    stdout = next(line for line in log.at("info") if line.startswith("stdout: "))
    assert len(stdout) < 4200
    assert stdout.endswith("(5904 more characters)")
    assert "stderr: warning: slow disk" in log.at("info")
    running = next(fields for level, message, fields in log.lines if message == "running exec hook")
    assert running["hookCommand"] == "dump"
    assert running["hookName"] == "freeze"
    assert running["hookPhase"] == "pre"


@run_async
async def test_counts_accumulate_over_pods_and_phases() -> None:
    executor = FakeExecutor(script={"bad": ExecOutcome(1)})
    hook_runner = runner(
        hooks(spec(pre=[{"command": ["ok"]}], post=[{"command": ["bad"], "onError": "Continue"}])), executor
    )
    for name in ("a", "b"):
        await hook_runner.run("pre", pod(name))
        await hook_runner.run("post", pod(name))
    assert hook_runner.hook_status() == HookStatus(hooks_attempted=4, hooks_failed=2)
