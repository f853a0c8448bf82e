"""Post-restore exec hooks: waiting for restored pods, running hooks, and what failures count as."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.runasync import run_async
from tests.unit.hooks.fakes import (
    FakeExecutor,
    FakePodReader,
    PodsByName,
    RecordingLog,
    pod,
    running,
    waiting,
)

from strongroom.hooks import ANNOTATION_HOOK_NAME, ExecOutcome, HookSource, RestoreExecHooks
from strongroom.kube import KubeUnavailable
from strongroom.model.velero import HookErrorMode, HookStatus, RestoreHooks

POLL = 0.001


def exec_hooks(*hooks: dict[str, Any], **filters: Any) -> RestoreHooks:
    return RestoreHooks.model_validate(
        {"resources": [{"name": "warmup", **filters, "postHooks": [{"exec": h} for h in hooks]}]}
    )


def make(
    hooks: RestoreHooks | None, states: list[Any], executor: FakeExecutor | None = None
) -> tuple[RestoreExecHooks, FakeExecutor, FakePodReader, RecordingLog]:
    executor = executor or FakeExecutor()
    reader = FakePodReader(states)
    log = RecordingLog()
    return RestoreExecHooks(hooks, executor, reader, log, poll_interval=POLL), executor, reader, log


def created(**kwargs: Any) -> dict[str, Any]:
    """The pod as the API returns it on create: nothing is running yet."""
    kwargs.setdefault("containers", ["app"])
    return pod(phase="Pending", statuses=[waiting(c) for c in kwargs["containers"]], **kwargs)


# --- resolution ---------------------------------------------------------------------


def test_spec_exec_hook_defaults() -> None:
    runner, *_ = make(exec_hooks({"command": ["warm"]}), [None])
    [hook] = runner.hooks_for(created(containers=["db", "side"]))
    assert (hook.name, hook.source, hook.container, hook.command) == (
        "warmup",
        HookSource.SPEC,
        "db",
        ("warm",),
    )
    assert (hook.on_error, hook.exec_timeout, hook.wait_timeout, hook.wait_for_ready) == (
        HookErrorMode.CONTINUE,
        30.0,
        None,
        False,
    )


def test_spec_exec_hook_values() -> None:
    runner, *_ = make(
        exec_hooks(
            {
                "container": "side",
                "command": ["warm"],
                "onError": "Fail",
                "execTimeout": "1m",
                "waitTimeout": "10m",
                "waitForReady": True,
            }
        ),
        [None],
    )
    [hook] = runner.hooks_for(created(containers=["db", "side"]))
    assert (hook.container, hook.on_error, hook.exec_timeout, hook.wait_timeout, hook.wait_for_ready) == (
        "side",
        HookErrorMode.FAIL,
        60.0,
        600.0,
        True,
    )


def test_init_hooks_are_not_exec_hooks() -> None:
    hooks = RestoreHooks.model_validate(
        {
            "resources": [
                {
                    "name": "mixed",
                    "postHooks": [
                        {"init": {"initContainers": [{"name": "i", "image": "b", "command": ["x"]}]}},
                        {"exec": {"command": ["warm"]}},
                    ],
                }
            ]
        }
    )
    runner, *_ = make(hooks, [None])
    assert [(h.command, h.index) for h in runner.hooks_for(created())] == [(("warm",), 1)]


def test_annotation_exec_hook_replaces_spec_hooks() -> None:
    annotated = created(
        containers=["app", "db"],
        annotations={
            "post.hook.restore.velero.io/container": "db",
            "post.hook.restore.velero.io/command": '["/bin/bash", "-c", "psql < /backup/dump.sql"]',
            "post.hook.restore.velero.io/on-error": "Fail",
            "post.hook.restore.velero.io/exec-timeout": "2m",
            "post.hook.restore.velero.io/wait-timeout": "5m",
            "post.hook.restore.velero.io/wait-for-ready": "true",
        },
    )
    runner, *_ = make(exec_hooks({"command": ["spec"]}), [None])
    [hook] = runner.hooks_for(annotated)
    assert (hook.name, hook.source, hook.container, hook.command) == (
        ANNOTATION_HOOK_NAME,
        HookSource.ANNOTATION,
        "db",
        ("/bin/bash", "-c", "psql < /backup/dump.sql"),
    )
    assert (hook.on_error, hook.exec_timeout, hook.wait_timeout, hook.wait_for_ready) == (
        HookErrorMode.FAIL,
        120.0,
        300.0,
        True,
    )


def test_annotation_exec_hook_defaults_and_bad_values() -> None:
    annotated = created(
        annotations={
            "post.hook.restore.velero.io/command": "/bin/true",
            "post.hook.restore.velero.io/wait-for-ready": "yes",
            "post.hook.restore.velero.io/wait-timeout": "soon",
        },
    )
    runner, _, _, log = make(None, [None])
    [hook] = runner.hooks_for(annotated)
    assert (
        hook.container,
        hook.command,
        hook.on_error,
        hook.exec_timeout,
        hook.wait_timeout,
        hook.wait_for_ready,
    ) == (
        "app",
        ("/bin/true",),
        HookErrorMode.CONTINUE,
        30.0,
        None,
        False,
    )
    assert len(log.at("warning")) == 2


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        ({"includedNamespaces": ["shop"]}, True),
        ({"excludedNamespaces": ["sh*"]}, False),
        ({"includedResources": ["pods"]}, True),
        ({"excludedResources": ["pod"]}, False),
        ({"labelSelector": {"matchLabels": {"app": "web"}}}, True),
        ({"labelSelector": {"matchLabels": {"app": "db"}}}, False),
    ],
)
def test_spec_filters_select_restored_pods(filters: dict[str, Any], selected: bool) -> None:
    runner, *_ = make(exec_hooks({"command": ["x"]}, **filters), [None])
    assert bool(runner.hooks_for(created(labels={"app": "web"}))) is selected


# --- running -------------------------------------------------------------------------


@run_async
async def test_hooks_wait_until_the_container_runs_then_run_in_order() -> None:
    first = created()
    states = [first, first, pod(phase="Pending", statuses=[running("app")])]
    runner, executor, reader, _ = make(
        exec_hooks({"command": ["a"]}, {"command": ["b"], "execTimeout": "5s"}), states
    )
    assert runner.start(first) == 2
    results = await runner.wait()
    assert reader.reads == 3
    assert [(c.namespace, c.pod, c.container, c.command, c.timeout) for c in executor.calls] == [
        ("shop", "web-0", "app", ("a",), 30.0),
        ("shop", "web-0", "app", ("b",), 5.0),
    ]
    assert (results.attempted, results.failed, results.errors, results.warnings) == (2, 0, {}, {})
    assert results.hook_status == HookStatus(hooks_attempted=2)


@run_async
async def test_wait_for_ready_waits_past_running() -> None:
    first = created()
    not_ready = pod(statuses=[running("app", ready=False)])
    ready = pod(statuses=[running("app", ready=True)])
    runner, executor, reader, _ = make(
        exec_hooks({"command": ["a"], "waitForReady": True}), [first, not_ready, not_ready, ready]
    )
    runner.start(first)
    await runner.wait()
    assert reader.reads == 4
    assert executor.commands == ["a"]


@run_async
async def test_container_never_up_within_wait_timeout_is_a_failure() -> None:
    first = created()
    runner, executor, _, _ = make(
        exec_hooks({"command": ["a"], "waitTimeout": "30ms", "waitForReady": True}), [first]
    )
    runner.start(first)
    results = await runner.wait()
    assert executor.calls == []
    assert (results.attempted, results.failed) == (1, 1)
    assert results.warnings == {
        "shop": [
            "post-restore hook warmup in container app of pod shop/web-0 failed: "
            "container app was not ready within the wait timeout of 30ms"
        ]
    }
    assert results.errors == {}


@run_async
async def test_wait_timeout_failure_with_fail_is_an_error() -> None:
    first = created()
    runner, *_ = make(exec_hooks({"command": ["a"], "waitTimeout": "10ms", "onError": "Fail"}), [first])
    runner.start(first)
    results = await runner.wait()
    assert list(results.errors) == ["shop"]
    assert "was not running within the wait timeout of 10ms" in results.errors["shop"][0]
    assert results.warnings == {}


@run_async
async def test_a_hook_whose_own_wait_timeout_expired_does_not_run() -> None:
    first = created()
    late = pod(statuses=[running("app")])
    # The pod is up only after the first hook's 1ms wait timeout; the second hook waits forever.
    states: list[Any] = [first] * 20 + [late]
    runner, executor, _, _ = make(
        exec_hooks({"command": ["a"], "waitTimeout": "1ms"}, {"command": ["b"]}), states
    )
    runner.start(first)
    results = await runner.wait()
    assert executor.commands == ["b"]
    assert (results.attempted, results.failed) == (2, 1)
    assert "not running within the wait timeout of 1ms" in results.warnings["shop"][0]


@run_async
async def test_a_deleted_pod_fails_its_hooks() -> None:
    first = created()
    runner, executor, _, _ = make(exec_hooks({"command": ["a"]}, {"command": ["b"]}), [first, None])
    runner.start(first)
    results = await runner.wait()
    assert executor.calls == []
    assert (results.attempted, results.failed) == (2, 2)
    assert all("the pod was deleted before its post-restore hooks ran" in m for m in results.warnings["shop"])


@run_async
async def test_a_pod_that_finished_fails_its_hooks() -> None:
    first = created()
    runner, *_ = make(
        exec_hooks({"command": ["a"], "onError": "Fail"}), [first, pod(phase="Succeeded", statuses=[])]
    )
    runner.start(first)
    results = await runner.wait()
    assert results.errors["shop"][0].endswith(
        "the pod entered phase Succeeded before its post-restore hooks ran"
    )


@run_async
async def test_fail_stops_the_pods_remaining_hooks_which_count_as_failed() -> None:
    first = created(containers=["app", "side"])
    up = pod(containers=["app", "side"])
    executor = FakeExecutor(script={"b": ExecOutcome(2)})
    runner, *_ = make(
        exec_hooks(
            {"command": ["a"]},
            {"command": ["b"], "onError": "Fail"},
            {"command": ["c"]},
            {"command": ["d"], "container": "side"},
        ),
        [up],
        executor,
    )
    runner.start(first)
    results = await runner.wait()
    assert executor.commands == ["a", "b"]
    assert (results.attempted, results.failed) == (4, 3)
    assert results.errors["shop"] == [
        "post-restore hook warmup in container app of pod shop/web-0 failed: command terminated with exit code 2"
    ]
    assert [m.split(": ", 1)[1] for m in results.warnings["shop"]] == [
        "not run: an earlier hook with onError Fail failed",
        "not run: an earlier hook with onError Fail failed",
    ]


@run_async
async def test_continue_failures_are_warnings_and_the_rest_runs() -> None:
    up = pod()
    executor = FakeExecutor(script={"a": ExecOutcome(1), "b": "hang"})
    runner, *_ = make(
        exec_hooks({"command": ["a"]}, {"command": ["b"], "execTimeout": "20ms"}, {"command": ["c"]}),
        [up],
        executor,
    )
    runner.start(up)
    results = await runner.wait()
    assert executor.commands == ["a", "b", "c"]
    assert [m.split(": ", 1)[1] for m in results.warnings["shop"]] == [
        "command terminated with exit code 1",
        "timed out after 20ms",
    ]
    assert (results.attempted, results.failed) == (3, 2)


@run_async
async def test_missing_container_fails_without_waiting() -> None:
    first = created()
    runner, executor, reader, _ = make(exec_hooks({"command": ["a"], "container": "nope"}), [first])
    runner.start(first)
    results = await runner.wait()
    assert reader.reads == 0
    assert executor.calls == []
    assert results.warnings["shop"][0].endswith('failed: no such container: "nope"')


@run_async
async def test_containers_run_their_hooks_as_each_comes_up() -> None:
    first = created(containers=["app", "side"])
    side_up = pod(containers=["app", "side"], phase="Pending", statuses=[waiting("app"), running("side")])
    both_up = pod(containers=["app", "side"])
    runner, executor, _, _ = make(
        exec_hooks({"command": ["a"]}, {"command": ["s"], "container": "side"}), [first, side_up, both_up]
    )
    runner.start(first)
    await runner.wait()
    assert executor.commands == ["s", "a"]


@run_async
async def test_read_errors_are_retried() -> None:
    first = created()
    runner, executor, _, _ = make(
        exec_hooks({"command": ["a"]}), [KubeUnavailable("connection refused"), pod()]
    )
    runner.start(first)
    results = await runner.wait()
    assert executor.commands == ["a"]
    assert results.failed == 0


@run_async
async def test_persistent_read_errors_end_in_the_wait_timeout_with_the_last_error() -> None:
    first = created()
    runner, *_ = make(
        exec_hooks({"command": ["a"], "waitTimeout": "20ms"}), [KubeUnavailable("connection refused")]
    )
    runner.start(first)
    results = await runner.wait()
    assert results.warnings["shop"][0].endswith("(last error reading the pod: connection refused)")


@run_async
async def test_pods_are_independent_and_counted_together() -> None:
    executor = FakeExecutor(script={"bad": ExecOutcome(1)})
    readers = PodsByName(
        {"good": FakePodReader([pod("good")]), "bad": FakePodReader([pod("bad", namespace="other")])}
    )
    hooks = RestoreHooks.model_validate(
        {
            "resources": [
                {
                    "name": "ok",
                    "includedNamespaces": ["shop"],
                    "postHooks": [{"exec": {"command": ["fine"]}}],
                },
                {
                    "name": "ko",
                    "includedNamespaces": ["other"],
                    "postHooks": [{"exec": {"command": ["bad"], "onError": "Fail"}}],
                },
            ]
        }
    )
    runner = RestoreExecHooks(hooks, executor, readers, RecordingLog(), poll_interval=POLL)
    assert runner.start(pod("good")) == 1
    assert runner.start(pod("bad", namespace="other")) == 1
    assert runner.start(pod("plain", namespace="elsewhere")) == 0
    results = await runner.wait()
    assert sorted(executor.commands) == ["bad", "fine"]
    assert (results.attempted, results.failed) == (2, 1)
    assert list(results.errors) == ["other"]
    assert results.hook_status == HookStatus(hooks_attempted=2, hooks_failed=1)
    assert [f.pod for f in results.failures] == ["bad"]


@run_async
async def test_cancel_fails_the_hooks_still_waiting() -> None:
    first = created()
    runner, *_ = make(exec_hooks({"command": ["a"]}, {"command": ["b"]}), [first])
    runner.start(first)
    runner.cancel()
    results = await runner.wait()
    assert (results.attempted, results.failed) == (2, 2)
    assert all(m.endswith("not run: the restore stopped waiting for hooks") for m in results.warnings["shop"])


@run_async
async def test_cancel_during_a_command_accounts_for_it() -> None:
    up = pod()
    executor = FakeExecutor(default="hang")
    runner, *_ = make(exec_hooks({"command": ["a"]}), [up], executor)
    runner.start(up)
    while not executor.calls:
        await asyncio.sleep(0)
    runner.cancel()
    results = await runner.wait()
    assert (results.attempted, results.failed) == (1, 1)
    assert runner.tracker.is_complete()


@run_async
async def test_nothing_started_means_empty_results() -> None:
    runner, *_ = make(exec_hooks({"command": ["a"]}), [None])
    results = await runner.wait()
    assert (results.attempted, results.failed, results.errors, results.warnings) == (0, 0, {}, {})
    assert results.hook_status == HookStatus()


@run_async
async def test_missing_container_with_fail_stops_the_other_containers_hooks() -> None:
    first = created(containers=["app"])
    runner, executor, _, _ = make(
        exec_hooks(
            {"command": ["x"], "container": "nope", "onError": "Fail"},
            {"command": ["y"], "container": "nope"},
            {"command": ["a"]},
        ),
        [pod()],
    )
    runner.start(first)
    results = await runner.wait()
    assert executor.calls == []
    assert (results.attempted, results.failed) == (3, 3)
    assert results.errors["shop"][0].endswith('failed: no such container: "nope"')
    assert [m.split(": ", 1)[1] for m in results.warnings["shop"]] == [
        "not run: an earlier hook with onError Fail failed",
        "not run: an earlier hook with onError Fail failed",
    ]
    assert runner.tracker.is_complete()
