"""Restore init hooks: the init containers of a restored pod, in Velero's order."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.hooks.fakes import RecordingLog, pod

from strongroom.hooks import HookSpecError, RestoreHookSet, add_init_containers
from strongroom.model.velero import RestoreHooks

RESTORE_WAIT = {"name": "restore-wait", "image": "strongroom:1", "command": ["/strongroom-restore-helper"]}


def init_hooks(*containers: dict[str, Any], **filters: Any) -> RestoreHooks:
    return RestoreHooks.model_validate(
        {
            "resources": [
                {"name": "prepare", **filters, "postHooks": [{"init": {"initContainers": list(containers)}}]}
            ]
        }
    )


def container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", f"echo {name}"]}


def names(restored: dict[str, Any]) -> list[str]:
    return [c["name"] for c in restored["spec"].get("initContainers", [])]


def test_restore_wait_first_then_hooks_then_the_pods_own() -> None:
    original = pod(init_containers=[container("migrate")])
    restored = add_init_containers(
        original, init_hooks(container("h1"), container("h2")), restore_wait=RESTORE_WAIT
    )
    assert names(restored) == ["restore-wait", "h1", "h2", "migrate"]
    assert restored["spec"]["initContainers"][0] == RESTORE_WAIT
    assert restored["spec"]["initContainers"][1] == container("h1")


def test_without_restore_wait_hooks_come_before_the_pods_own() -> None:
    restored = add_init_containers(pod(init_containers=[container("migrate")]), init_hooks(container("h1")))
    assert names(restored) == ["h1", "migrate"]


def test_stale_wait_containers_from_the_backup_are_dropped() -> None:
    stale = pod(
        init_containers=[
            {"name": "restic-wait", "image": "old"},
            {"name": "restore-wait", "image": "old"},
            container("migrate"),
        ]
    )
    assert names(add_init_containers(stale, None)) == ["migrate"]
    assert names(add_init_containers(stale, None, restore_wait=RESTORE_WAIT)) == ["restore-wait", "migrate"]
    assert (
        add_init_containers(stale, None, restore_wait=RESTORE_WAIT)["spec"]["initContainers"][0]["image"]
        == "strongroom:1"
    )


def test_the_given_pod_is_not_changed() -> None:
    original = pod(init_containers=[container("migrate")])
    snapshot = repr(original)
    add_init_containers(original, init_hooks(container("h1")), restore_wait=RESTORE_WAIT)
    assert repr(original) == snapshot


def test_a_pod_without_hooks_keeps_its_spec() -> None:
    original = pod()
    restored = add_init_containers(original, init_hooks(container("h1"), includedNamespaces=["elsewhere"]))
    assert restored == original
    assert "initContainers" not in restored["spec"]


def test_annotation_init_container_replaces_spec_hooks() -> None:
    annotated = pod(
        annotations={
            "init.hook.restore.velero.io/container-image": "alpine:latest",
            "init.hook.restore.velero.io/container-name": "restore-hook",
            "init.hook.restore.velero.io/command": '["/bin/ash", "-c", "date"]',
        },
        init_containers=[container("migrate")],
    )
    restored = add_init_containers(annotated, init_hooks(container("h1")), restore_wait=RESTORE_WAIT)
    assert names(restored) == ["restore-wait", "restore-hook", "migrate"]
    assert restored["spec"]["initContainers"][1] == {
        "name": "restore-hook",
        "image": "alpine:latest",
        "command": ["/bin/ash", "-c", "date"],
    }


def test_annotation_init_container_without_name_or_command() -> None:
    annotated = pod(annotations={"init.hook.restore.velero.io/container-image": "alpine:latest"})
    log = RecordingLog()
    restored = add_init_containers(annotated, None, log=log, name_suffix=lambda: "1a2b3c4d")
    assert restored["spec"]["initContainers"] == [
        {"name": "velero-restore-init-1a2b3c4d", "image": "alpine:latest"}
    ]
    assert any("default entrypoint" in line for line in log.at("info"))


def test_generated_annotation_names_differ_between_pods() -> None:
    annotated = pod(annotations={"init.hook.restore.velero.io/container-image": "alpine:latest"})
    first, second = (names(add_init_containers(annotated, None))[0] for _ in range(2))
    assert first.startswith("velero-restore-init-") and len(first) == len("velero-restore-init-") + 8
    assert first != second


def test_spec_hooks_select_on_the_namespace_the_pod_is_restored_to() -> None:
    only_prod = init_hooks(container("h1"), includedNamespaces=["prod"])
    staged = pod(namespace="staging")
    assert names(add_init_containers(staged, only_prod, namespace_mapping={"staging": "prod"})) == ["h1"]
    assert names(add_init_containers(staged, only_prod)) == []


def test_spec_hooks_select_on_labels() -> None:
    web_only = init_hooks(container("h1"), labelSelector={"matchLabels": {"app": "web"}})
    assert names(add_init_containers(pod(labels={"app": "web"}), web_only)) == ["h1"]
    assert names(add_init_containers(pod(labels={"app": "db"}), web_only)) == []


@pytest.mark.parametrize("missing", ["name", "image", "command"])
def test_init_container_without_name_image_or_command_is_refused(missing: str) -> None:
    incomplete = container("h1")
    del incomplete[missing]
    with pytest.raises(HookSpecError, match="restore hook 'prepare': invalid InitContainer in restore hook"):
        add_init_containers(pod(), init_hooks(incomplete))
    assert RestoreHookSet(init_hooks(incomplete, container("h2"))).validation_errors() == [
        "invalid InitContainer in restore hook, it doesn't have Command, Name or Image field"
    ]


def test_valid_init_hooks_have_no_validation_errors() -> None:
    assert RestoreHookSet(init_hooks(container("h1"))).validation_errors() == []
    assert RestoreHookSet(None).validation_errors() == []
