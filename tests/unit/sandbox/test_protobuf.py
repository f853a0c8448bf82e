"""The protobuf request-body decoder, on bodies built here with a minimal encoder."""

from __future__ import annotations

import pytest

from strongroom.sandbox.protobuf import MAGIC, MESSAGES, ProtobufError, decode


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def num(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def blob(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(field << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + blob(1, blob(1, api_version) + blob(2, kind)) + blob(2, raw) + blob(3, "") + blob(4, "")


def meta(name: str, **extra: bytes) -> bytes:
    # What Go writes for an ObjectMeta with only a name: every non-pointer field, empty.
    empty = b"".join(blob(n, "") for n in (2, 3, 4, 5, 6)) + num(7, 0) + blob(8, b"")
    return blob(1, name) + empty + b"".join(extra.values())


def test_configmap_with_go_zero_values_decodes_to_kubes_json() -> None:
    raw = (
        blob(1, meta("settings"))
        + blob(2, blob(1, "color") + blob(2, "blue"))
        + blob(2, blob(1, "e") + blob(2, ""))
    )
    assert decode(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"color": "blue", "e": ""},
    }


def test_secret_bytes_become_base64_and_a_set_pointer_keeps_false() -> None:
    raw = blob(1, meta("s")) + blob(2, blob(1, "k") + blob(2, b"\x00\xff")) + blob(3, "Opaque") + num(5, 0)
    decoded = decode(envelope("v1", "Secret", raw))
    assert decoded["data"] == {"k": "AP8="}
    assert decoded["immutable"] is False
    assert decoded["type"] == "Opaque"


def test_times_int_or_string_and_negative_numbers() -> None:
    timestamp = blob(8, num(1, 1_700_000_000) + num(2, 0))
    labels = blob(11, blob(1, "app") + blob(2, "x"))
    strategy = blob(4, blob(1, "RollingUpdate") + blob(2, blob(1, num(1, 1) + blob(3, "25%"))))
    spec = num(1, 3) + num(6, -1) + strategy
    raw = blob(1, blob(1, "d") + timestamp + labels) + blob(2, spec)
    decoded = decode(envelope("apps/v1", "Deployment", raw))
    assert decoded["metadata"] == {
        "name": "d",
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "labels": {"app": "x"},
    }
    assert decoded["spec"]["replicas"] == 3
    assert decoded["spec"]["revisionHistoryLimit"] == -1
    assert decoded["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%"},
    }


def test_unknown_fields_are_refused_never_dropped() -> None:
    raw = blob(1, meta("x")) + blob(99, "surprise")
    with pytest.raises(ProtobufError, match="field 99 of ConfigMap is not known"):
        decode(envelope("v1", "ConfigMap", raw))


def test_unknown_kinds_bad_magic_and_truncation_are_refused() -> None:
    with pytest.raises(ProtobufError, match="kind Pod are not known"):
        decode(envelope("v1", "Pod", blob(1, meta("p"))))
    with pytest.raises(ProtobufError, match="magic"):
        decode(b'{"kind": "ConfigMap"}')
    body = envelope("v1", "ConfigMap", blob(1, meta("x")))
    with pytest.raises(ProtobufError, match="truncated"):
        decode(body[:-12])


def test_every_field_names_a_known_type() -> None:
    scalars = {"string", "bytes", "int32", "int64", "bool", "Time", "MicroTime", "Quantity", "IntOrString"}
    for message, fields in MESSAGES.items():
        for number, field in fields.items():
            type_ = field.type.removeprefix("map:")
            assert type_ in scalars or type_ in MESSAGES, f"{message}.{field.name} ({number}): {field.type}"
            assert field.presence in ("", "opt", "keep", "inline"), f"{message}.{field.name}"
            assert (field.presence == "inline") == (field.name == ""), f"{message} field {number}"


def int_or_string(text: str) -> bytes:
    return num(1, 1) + num(2, 0) + blob(3, text)


def job(pod_spec: bytes, template_meta: bytes = b"") -> bytes:
    template = blob(1, template_meta) + blob(2, pod_spec)
    return envelope("batch/v1", "Job", blob(1, meta("j")) + blob(2, blob(6, template)))


def test_a_pod_template_keeps_what_go_writes_for_pointers_structs_and_inline_members() -> None:
    container = (
        blob(1, "c")
        + blob(2, "busybox")
        + blob(8, b"")  # resources: a struct, written empty
        + blob(7, blob(1, "PW") + blob(3, blob(4, blob(1, blob(1, "creds")) + blob(2, "pw") + num(3, 0))))
        + blob(11, blob(1, blob(2, blob(1, "/ready") + blob(2, int_or_string("http")))) + num(2, 0))
        + blob(15, num(2, 0) + num(4, 0))  # privileged: false, runAsUser: 0 (pointers: kept)
        + blob(13, "")
        + num(16, 0)
    )
    spec = (
        blob(1, blob(1, "scratch") + blob(2, blob(2, b"")))  # emptyDir: {} through the inline VolumeSource
        + blob(1, blob(1, "etc") + blob(2, blob(1, blob(1, "/etc") + blob(2, "Directory"))))
        + blob(2, container)
        + blob(14, num(5, 0) + blob(4, varint(0) + varint(1000)) + blob(10, blob(1, "RuntimeDefault")))
        + blob(22, blob(2, "Exists") + num(5, 0))
        + num(11, 1)
        + num(12, 0)
    )
    decoded = decode(job(spec))
    template = decoded["spec"]["template"]
    assert template["metadata"] == {}
    assert template["spec"] == {
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "etc", "hostPath": {"path": "/etc", "type": "Directory"}},
        ],
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "resources": {},
                "env": [
                    {
                        "name": "PW",
                        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw", "optional": False}},
                    }
                ],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                "securityContext": {"privileged": False, "runAsUser": 0},
            }
        ],
        # supplementalGroups came packed: protobuf readers take both encodings.
        "securityContext": {
            "fsGroup": 0,
            "supplementalGroups": [0, 1000],
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "tolerations": [{"operator": "Exists", "tolerationSeconds": 0}],
        "hostNetwork": True,
    }


def test_an_unknown_pod_field_is_refused_with_its_path() -> None:
    with pytest.raises(ProtobufError, match=r"Job.spec.template.spec: field 99 of PodSpec is not known"):
        decode(job(blob(99, "future")))
    container = blob(1, "c") + blob(77, "future")
    with pytest.raises(ProtobufError, match=r"spec.containers: field 77 of Container is not known"):
        decode(job(blob(2, container)))
