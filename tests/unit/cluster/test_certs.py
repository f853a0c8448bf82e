"""Certificate expiry: PEM bundles, the signer's annotation, status thresholds and the last safe restart."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from strongroom.cluster import certs
from strongroom.cluster.certs import (
    ClusterFindings,
    PemSource,
    SignerSecret,
    Source,
    Status,
    build_report,
    judge,
    kubeconfig_sources,
    parse_not_after_annotation,
    parse_pem_bundle,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(cn: str, not_after: datetime, *, issuer: str | None = None, ca: bool = True) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or cn)]))
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=365))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


PAST = NOW - timedelta(days=3)
SOON = NOW + timedelta(days=10)
LATER = NOW + timedelta(days=300)


def findings(
    *pems: PemSource, signer: SignerSecret | None = None, openshift: bool = False
) -> ClusterFindings:
    return ClusterFindings(pems=pems, signer=signer, openshift=openshift, namespaces=("kube-system",))


def test_bundle_yields_every_certificate_in_order_and_ignores_text_between() -> None:
    bundle = (
        b"# kube CA\n" + pem("a", PAST) + b"garbage line\n\n" + pem("b", SOON) + b"trailing" + pem("c", LATER)
    )
    found, problems = parse_pem_bundle(bundle)
    assert [f.subject_cn for f in found] == ["a", "b", "c"]
    assert [f.not_after for f in found] == [PAST, SOON, LATER]
    assert problems == []


def test_bundle_reports_a_broken_block_and_keeps_the_others() -> None:
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    found, problems = parse_pem_bundle(pem("a", SOON) + broken + pem("b", LATER).decode().encode())
    assert [f.subject_cn for f in found] == ["a", "b"]
    assert len(problems) == 1
    assert problems[0].startswith("certificate 1 ")


def test_bundle_block_with_headers_is_reported_not_skipped() -> None:
    odd = b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n"
    found, problems = parse_pem_bundle(odd + pem("b", LATER))
    assert [f.subject_cn for f in found] == ["b"]
    assert len(problems) == 1


def test_bundle_reads_issuer_and_ca_flag() -> None:
    (facts,), _ = parse_pem_bundle(pem("leaf", LATER, issuer="root", ca=False))
    assert (facts.subject_cn, facts.issuer_cn, facts.is_ca) == ("leaf", "root", False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-08-05T14:37:50Z", datetime(2022, 8, 5, 14, 37, 50, tzinfo=UTC)),
        ("2022-08-05T14:37:50.5Z", datetime(2022, 8, 5, 14, 37, 50, 500000, tzinfo=UTC)),
        ("2022-08-05T16:37:50+02:00", datetime(2022, 8, 5, 14, 37, 50, tzinfo=UTC)),
    ],
)
def test_annotation_parses_rfc3339(text: str, expected: datetime) -> None:
    assert parse_not_after_annotation(text) == expected


@pytest.mark.parametrize("text", ["2022-08-05T14:37:50", "next tuesday", ""])
def test_annotation_without_offset_or_garbage_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_not_after_annotation(text)


def test_status_thresholds() -> None:
    assert judge(PAST, NOW, 30) is Status.expired
    assert judge(NOW, NOW, 30) is Status.expired
    assert judge(SOON, NOW, 30) is Status.warning
    assert judge(SOON, NOW, 10) is Status.ok  # exactly 10 days left is not under 10
    assert judge(LATER, NOW, 30) is Status.ok


def test_report_lists_each_certificate_of_a_configmap_bundle_with_status() -> None:
    source = Source("ConfigMap", "openshift-config", "ca", "ca-bundle.crt")
    bundle = pem("old", PAST) + pem("new", LATER)
    report = build_report(findings(PemSource(source, bundle)), [], now=NOW, warn_days=30)
    assert [(c.facts.subject_cn, c.status, c.source.describe()) for c in report.certificates] == [
        ("old", Status.expired, "ConfigMap/openshift-config/ca/ca-bundle.crt[0]"),
        ("new", Status.ok, "ConfigMap/openshift-config/ca/ca-bundle.crt[1]"),
    ]
    assert report.certificates[0].days_left == -3
    assert len(report.expired()) == 1


def test_signer_annotation_gives_the_last_safe_restart_when_there_is_no_certificate() -> None:
    signer = SignerSecret(annotation="2026-12-06T12:00:00Z", tls_crt=None)
    report = build_report(findings(signer=signer, openshift=True), [], now=NOW, warn_days=30)
    assert report.deadline is not None
    assert report.deadline.not_after == SOON
    assert report.deadline.days_left == 10
    assert report.signer.status is Status.warning
    assert report.warnings() and "annotation" in report.warnings()[0]


def test_signer_certificate_wins_over_a_disagreeing_annotation() -> None:
    signer = SignerSecret(
        annotation="2027-01-01T00:00:00Z", tls_crt=pem("kube-apiserver-to-kubelet-signer", SOON)
    )
    report = build_report(findings(signer=signer, openshift=True), [], now=NOW, warn_days=30)
    assert report.signer.annotation_not_after == datetime(2027, 1, 1, tzinfo=UTC)
    assert report.signer.certificate_not_after == SOON
    assert report.deadline is not None and report.deadline.not_after == SOON
    assert any("certificate wins" in note for note in report.notes)


def test_expired_signer_is_expired() -> None:
    signer = SignerSecret(annotation=PAST.isoformat(), tls_crt=None)
    report = build_report(findings(signer=signer, openshift=True), [], now=NOW, warn_days=30)
    assert report.signer.status is Status.expired
    assert report.expired()


def test_on_openshift_the_deadline_is_the_signer_even_if_a_ca_expires_earlier() -> None:
    early = PemSource(
        Source("ConfigMap", "kube-system", "kube-root-ca.crt", "ca.crt"),
        pem("ca", PAST),
        "kubernetes client CA",
    )
    signer = SignerSecret(annotation=LATER.isoformat(), tls_crt=None)
    report = build_report(findings(early, signer=signer, openshift=True), [], now=NOW, warn_days=30)
    assert report.deadline is not None and report.deadline.not_after == LATER


def test_on_plain_kubernetes_the_earliest_client_ca_is_the_deadline_and_the_signer_is_absent() -> None:
    root = PemSource(
        Source("ConfigMap", "kube-system", "kube-root-ca.crt", "ca.crt"),
        pem("root", LATER),
        "kubernetes client CA",
    )
    client = PemSource(
        Source("ConfigMap", "kube-system", "extension-apiserver-authentication", "client-ca-file"),
        pem("client-ca", SOON),
        "kubernetes client CA",
    )
    other = PemSource(Source("Secret", "kube-system", "x", "tls.crt"), pem("serving", PAST, ca=False))
    report = build_report(findings(root, client, other), [], now=NOW, warn_days=30)
    assert report.deadline is not None
    assert report.deadline.not_after == SOON
    assert report.deadline.basis == (
        "ConfigMap/kube-system/extension-apiserver-authentication/client-ca-file",
    )
    assert not report.signer.present
    assert any("does not exist" in note for note in report.notes)


def test_without_any_ca_there_is_no_deadline() -> None:
    report = build_report(findings(), [], now=NOW, warn_days=30)
    assert report.deadline is None
    assert report.to_json()["lastSafeRestart"] is None


def test_kubeconfig_ca_and_client_certificate_inline_or_by_relative_file(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(pem("file-ca", LATER))
    document = {
        "current-context": "a",
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://x", "certificate-authority": "ca.crt"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "client-certificate-data": base64.b64encode(
                        pem("admin", SOON, issuer="file-ca", ca=False)
                    ).decode(),
                    "client-key-data": "c2VjcmV0",
                },
            }
        ],
    }
    sources, notes = kubeconfig_sources([(tmp_path / "config", document)], None)
    assert notes == []
    assert [(s.source.kind, s.source.name, s.role) for s in sources] == [
        ("Kubeconfig/cluster", "c", "kubeconfig cluster CA"),
        ("Kubeconfig/user", "u", "kubeconfig client certificate"),
    ]
    report = build_report(findings(), sources, now=NOW, warn_days=30)
    assert {c.facts.subject_cn for c in report.certificates} == {"file-ca", "admin"}
    assert "c2VjcmV0" not in str(report.to_json())
    # on plain Kubernetes the kubeconfig's CA counts; the client certificate is no CA
    assert report.deadline is not None and report.deadline.not_after == LATER


def test_kubeconfig_first_file_wins_and_unknown_context_is_a_note(tmp_path: Path) -> None:
    first = {"current-context": "a", "contexts": [{"name": "a", "context": {"cluster": "c"}}], "clusters": []}
    second = {
        "current-context": "b",
        "clusters": [
            {
                "name": "c",
                "cluster": {"certificate-authority-data": base64.b64encode(pem("ca", LATER)).decode()},
            }
        ],
    }
    sources, _ = kubeconfig_sources([(tmp_path / "1", first), (tmp_path / "2", second)], None)
    assert [s.source.name for s in sources] == ["c"]
    sources, notes = kubeconfig_sources([(tmp_path / "1", first)], "missing")
    assert sources == [] and "missing" in notes[0]


def test_secret_private_keys_are_never_decoded() -> None:
    secret = {
        "metadata": {"namespace": "kube-system", "name": "s"},
        "data": {
            "tls.crt": base64.b64encode(pem("s", LATER)).decode(),
            "tls.key": base64.b64encode(b"-----BEGIN CERTIFICATE-----PRIVATE").decode(),
        },
    }
    notes: list[str] = []
    found = certs._secret_pems(secret, notes)
    assert [p.source.key for p in found] == ["tls.crt"]
