"""The pieces around hook rules: counting, command parsing, log bounds, and the Kubernetes adapters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from tests.runasync import run_async

from strongroom.hooks import (
    ExecOutcome,
    HookError,
    HookKey,
    HookTimeout,
    HookTracker,
    KubeExecutor,
    KubePodReader,
    LoggingHookLog,
    parse_command,
)
from strongroom.hooks.execution import bounded_text
from strongroom.hooks.resolve import format_seconds
from strongroom.model.velero import HookStatus


def key(index: int = 0, pod: str = "p") -> HookKey:
    return HookKey("ns", pod, "pre", "spec", "h", "app", index)


def test_tracker_counts_each_hook_once() -> None:
    tracker = HookTracker()
    tracker.add(key(0))
    tracker.add(key(0))
    tracker.add(key(1))
    assert tracker.stat() == (2, 0)
    assert not tracker.is_complete()
    tracker.record(key(0), failed=True)
    tracker.record(key(0), failed=True)  # a second outcome is ignored
    tracker.record(key(1), failed=False)
    assert tracker.stat() == (2, 1)
    assert tracker.is_complete()
    assert tracker.hook_status() == HookStatus(hooks_attempted=2, hooks_failed=1)


def test_recording_an_unadded_hook_counts_it_as_attempted() -> None:
    tracker = HookTracker()
    tracker.record(key(pod="q"), failed=False)
    assert (tracker.attempted, tracker.failed) == (1, 0)


def test_empty_tracker_status_omits_zeros() -> None:
    assert HookTracker().hook_status().model_dump(by_alias=True, exclude_none=True) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["a", "b c"]', ["a", "b c"]),
        ("[]", []),
        ("a b", ["a b"]),
        ('["a", 1]', ['["a", 1]']),
        ('{"a": 1}', ['{"a": 1}']),
        ("[", ["["]),
    ],
)
def test_parse_command(value: str, expected: list[str]) -> None:
    assert parse_command(value) == expected


@pytest.mark.parametrize(
    ("seconds", "text"), [(30.0, "30s"), (90.0, "1m30s"), (0.25, "250ms"), (3600.0, "1h0m0s")]
)
def test_durations_are_written_as_go_writes_them(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_bounded_text_cuts_and_says_how_much() -> None:
    assert bounded_text(b"short") == "short"
    assert bounded_text(b"abcdef", limit=4) == "abcd... (2 more characters)"
    assert bounded_text(b"\xff ok") == "\ufffd ok"


def test_logging_hook_log_maps_levels_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="strongroom.hooks")
    LoggingHookLog().log("warning", "Error executing hook", hookName="h", empty="", namespace="ns")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "Error executing hook hookName=h namespace=ns"


@dataclass
class _Result:
    exit_code: int | None
    stdout: bytes
    stderr: bytes


def _fake_exec_client(monkeypatch: pytest.MonkeyPatch, behaviour: Any) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    async def exec_command(
        client: Any,
        namespace: str,
        pod: str,
        container: str,
        command: list[str],
        *,
        stdin: Any = None,
        timeout: float | None = None,
    ) -> _Result:
        calls.append((client, namespace, pod, container, command, timeout))
        if isinstance(behaviour, BaseException):
            raise behaviour
        return behaviour  # type: ignore[no-any-return]

    monkeypatch.setattr("strongroom.hooks.execution.exec_command", exec_command)
    return calls


@run_async
async def test_kube_executor_calls_the_exec_client(monkeypatch: pytest.MonkeyPatch) -> None:
    client = object()
    calls = _fake_exec_client(monkeypatch, _Result(2, b"out", b"err"))
    outcome = await KubeExecutor(client).exec("ns", "web", "app", ["sh", "-c", "true"], 5.0)  # type: ignore[arg-type]
    assert outcome == ExecOutcome(2, b"out", b"err")
    assert calls == [(client, "ns", "web", "app", ["sh", "-c", "true"], 5.0)]


@run_async
async def test_kube_executor_turns_a_timeout_into_hook_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_exec_client(monkeypatch, TimeoutError())
    with pytest.raises(HookTimeout, match="timed out after 5s"):
        await KubeExecutor(object()).exec("ns", "web", "app", ["x"], 5.0)  # type: ignore[arg-type]


@run_async
async def test_kube_executor_refuses_an_unknown_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_exec_client(monkeypatch, _Result(None, b"", b""))
    with pytest.raises(HookError, match="without reporting an exit status"):
        await KubeExecutor(object()).exec("ns", "web", "app", ["x"], None)  # type: ignore[arg-type]


class _FakeClient:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.asked: list[tuple[str, str, str | None]] = []

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.asked.append((res.group_resource, name, namespace))
        return self.objects.get((namespace or "", name))


@run_async
async def test_kube_pod_reader_gets_core_pods() -> None:
    client = _FakeClient({("shop", "web-0"): {"metadata": {"name": "web-0"}}})
    reader = KubePodReader(client)  # type: ignore[arg-type]
    assert await reader.get_pod("shop", "web-0") == {"metadata": {"name": "web-0"}}
    assert await reader.get_pod("shop", "gone") is None
    assert client.asked == [("pods", "web-0", "shop"), ("pods", "gone", "shop")]
