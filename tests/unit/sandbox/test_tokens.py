"""Service-account JWTs: signed with the sandbox's key, expiring, carrying kube's claims."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from strongroom.sandbox.admission import SERVICE_ACCOUNT_MOUNT, add_service_account_volume
from strongroom.sandbox.tokens import ISSUER, TokenIssuer


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_a_token_verifies_until_it_expires(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path)
    token, expires = issuer.issue(
        namespace="ns", name="robot", uid="u1", audiences=[ISSUER], expiration_seconds=600, now=1000
    )
    assert expires == 1600
    claims = issuer.verify(token, now=1500)
    assert claims is not None
    assert claims.username == "system:serviceaccount:ns:robot"
    assert (claims.uid, claims.audiences, claims.pod_name) == ("u1", (ISSUER,), None)
    assert issuer.verify(token, now=1600) is None
    body = _claims(token)
    assert body["sub"] == "system:serviceaccount:ns:robot"
    assert body["kubernetes.io"] == {"namespace": "ns", "serviceaccount": {"name": "robot", "uid": "u1"}}


def test_the_key_survives_restarts_and_forgeries_fail(tmp_path: Path) -> None:
    token, _ = TokenIssuer(tmp_path).issue(
        namespace="ns", name="sa", uid="u", audiences=[ISSUER], expiration_seconds=3600
    )
    assert TokenIssuer(tmp_path).verify(token) is not None  # same sandbox dir, same key
    assert oct((tmp_path / "sa.key").stat().st_mode & 0o777) == "0o600"
    header, _payload, signature = token.split(".")
    other, _ = TokenIssuer(tmp_path / "other").issue(
        namespace="ns", name="admin", uid="u", audiences=[ISSUER], expiration_seconds=3600
    )
    assert TokenIssuer(tmp_path).verify(other) is None
    assert TokenIssuer(tmp_path).verify(f"{header}.{other.split('.')[1]}.{signature}") is None
    assert TokenIssuer(tmp_path).verify("a.b") is None
    assert TokenIssuer(tmp_path).verify("!!.??.xx") is None


def test_pod_bound_tokens_name_the_pod(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path)
    pod = {"metadata": {"name": "p", "uid": "pod-uid"}}
    token, _ = issuer.issue(
        namespace="ns", name="sa", uid="u", audiences=["vault"], expiration_seconds=600, pod=pod
    )
    claims = issuer.verify(token)
    assert claims is not None
    assert (claims.pod_name, claims.pod_uid, claims.audiences) == ("p", "pod-uid", ("vault",))


def test_service_account_admission_adds_the_token_volume_to_every_container() -> None:
    pod = {
        "spec": {
            "serviceAccountName": "robot",
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "x", "mountPath": SERVICE_ACCOUNT_MOUNT}]},
            ],
        }
    }
    add_service_account_volume(pod, None, "abcde")
    spec = pod["spec"]
    assert spec["serviceAccount"] == "robot"
    volume = spec["volumes"][0]
    assert volume["name"] == "kube-api-access-abcde"
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mount = {"name": "kube-api-access-abcde", "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "x", "mountPath": SERVICE_ACCOUNT_MOUNT}]


def test_automount_off_on_the_pod_or_its_account_means_no_volume() -> None:
    off_on_pod = {"spec": {"automountServiceAccountToken": False, "containers": [{"name": "a"}]}}
    add_service_account_volume(off_on_pod, True, "abcde")
    assert "volumes" not in off_on_pod["spec"]
    off_on_account = {"spec": {"containers": [{"name": "a"}]}}
    add_service_account_volume(off_on_account, False, "abcde")
    assert "volumes" not in off_on_account["spec"]
    assert off_on_account["spec"]["serviceAccountName"] == "default"
    on_despite_account = {"spec": {"automountServiceAccountToken": True, "containers": [{"name": "a"}]}}
    add_service_account_volume(on_despite_account, False, "abcde")
    assert on_despite_account["spec"]["volumes"][0]["name"] == "kube-api-access-abcde"
