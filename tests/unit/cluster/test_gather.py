"""must-gather's pure parts: the log window, the 0600 tarball, and a summary that names what is missing."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strongroom.cluster.gather import BundleWriter, GatherOptions, GatherReport, parse_since
from strongroom.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("6h", 21600), ("24h", 86400), ("72h", 259200), ("all", None), (" 6H ", 21600)],
)
def test_since_accepts_the_windows_of_the_oadp_must_gather(text: str, seconds: int | None) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "2h", "1d", "-1h", "forever"])
def test_since_refuses_other_windows_with_the_choices_in_the_hint(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_since(text)
    assert "1h, 6h, 24h, 72h, all" in str(caught.value.hint)


def test_bundle_is_created_0600_even_over_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "must-gather.tar.gz"
    path.write_bytes(b"old")
    path.chmod(0o644)
    bundle = BundleWriter(path, clock=lambda: 1_700_000_000.0)
    bundle.add_bytes("summary.txt", b"hello\n")
    bundle.add_file("logs/p/c.log", io.BytesIO(b"line\n"), 5)
    bundle.close()

    assert path.stat().st_mode & 0o777 == 0o600
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["must-gather/summary.txt", "must-gather/logs/p/c.log"]
        assert all(m.mode == 0o600 and m.mtime == 1_700_000_000 for m in members)
        extracted = tar.extractfile("must-gather/logs/p/c.log")
        assert extracted is not None and extracted.read() == b"line\n"
    assert bundle.names == ["summary.txt", "logs/p/c.log"]


def test_summary_lists_the_window_the_counts_and_every_part_left_out_with_why() -> None:
    report = GatherReport(
        GatherOptions(namespace="openshift-adp", since="6h", metrics=True), datetime.now(UTC)
    )
    report.counts["resources/velero.io/backups.yaml"] = 3000
    report.locations.append("default: phase=Available lastValidationTime=-")
    report.metrics.append("not gathered from velero-0:8085 (error: not found)")
    report.left_out.append(("logs/velero-0/velero.log", "not started: timeout reached"))
    report.truncated.append("logs/velero-1/velero.log (at 10485760 bytes)")

    summary = report.summary()

    assert "log window: --since 6h (21600s)" in summary
    assert "resources/velero.io/backups.yaml: 3000" in summary
    assert "default: phase=Available" in summary
    assert "metrics: not gathered from velero-0:8085" in summary
    assert "logs/velero-0/velero.log: not started: timeout reached" in summary
    assert "logs/velero-1/velero.log (at 10485760 bytes)" in summary
    assert not report.complete


def test_a_complete_run_says_nothing_was_left_out_and_that_metrics_were_not_asked_for() -> None:
    report = GatherReport(GatherOptions(since="all"), datetime.now(UTC))
    summary = report.summary()
    assert "log window: --since all\n" in summary
    assert "metrics: not requested (--metrics)" in summary
    assert summary.rstrip().endswith("left out:\n  nothing")
    assert report.complete
